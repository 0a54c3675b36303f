"""The row-fused rewrite (kernels/rowcode.py): a kernel call on one-column arrays rewritten into
straight-line code. Oracle: the CPU kernel itself, run on (1, 1) arrays; the row code, run as
Python over the same values, must write the same numbers (float64, to 1e-12), with each
skippable gradient present and skipped. In one configuration's code (an antithetic pair's two
rows unrolled), the pair's kernels read the partner's locals: oracle, the CPU kernel on the
pair's two rows. And its refusals: a body that reads other columns or rows, or a configuration
the drawn row has not, has no row form."""
import numpy as np
import pytest

from ppl.kernels import rowcode
from ppl.kernels.cpu import core, rows
from ppl.kernels.families import antithetic
from ppl.kernels.math import rng, scalar
from ppl.lowering.printer import qualify as _qualify

# kernel, then each argument: "x" a (1, 1) input, "o" a (1, 1) output, "r" a (1,) row input,
# "ro" a (1,) row output, "v" a (1,) vector input, "vo" a (1,) vector output, "pos" a positive
# (1, 1) input, "bit" a 0/1 (1, 1) input, or a number (a constant argument)
CASES = [
    (core.sigmoid_fwd, "x o"), (core.sigmoid_bwd, "x x x o"), (core.tanh_bwd, "x x x o"),
    (core.relu_bwd, "x x x o"), (core.softplus_fwd, "x o"), (core.exp_bwd, "x x x o"),
    (core.sqrt1p_fwd, "x o"), (core.log_fwd, "pos o"), (core.log_bwd, "pos x x o"),
    (core.add_fwd, "x x o"), (core.add_bwd, "x o o"), (core.mul_bwd, "x x x o o"),
    (core.div_fwd, "x pos o"), (core.div_bwd, "x pos x x o o"), (core.pow_fwd, ("pos", 1.7, "o")),
    (core.pow_bwd, ("pos", -0.6, "x", "x", "o")), (core.row_sum_fwd, "x ro"), (core.row_sum_bwd, "r o"),
    (core.affine_fwd, "x x v o"), (core.affine_bwd, "x x x o o vo"),
    (core.broadcast_rows_fwd, "v o"), (core.broadcast_rows_bwd, "x vo"),
    (rows.scale_shift_fwd, ("x", 1.5, -0.25, "o")), (rows.scale_shift_bwd, (1.5, "x", "o")),
    (rows.fill2, ("o", 0.75)), (rows.take_cols, ("x", 0, "o")), (rows.add_to_cols, ("x", 0, "o")),
    (rows.add_from_cols, ("x", 0, "o")), (rows.add_scaled_rows, "x r o"),
    (core.bernoulli_nll, "x bit ro"), (core.bernoulli_nll_bwd, "x bit r o o"),
    (core.gaussian_nll, "x pos x ro"), (core.gaussian_nll_bwd, "x pos x r o o o"),
    (core.gaussian_kl_std, "x pos ro"), (core.gaussian_kl_std_bwd, "x pos r o o"),
    (core.gaussian_kl, "x pos x pos ro"), (core.gaussian_kl_bwd, "x pos x pos r o o o o"),
    (core.bernoulli_sample, "x x o"), (core.bernoulli_log_prob, "x bit ro"),
    (core.bernoulli_log_prob_bwd, "x bit r o o"), (core.bernoulli_st_bwd, "x x o"),
    (core.binary_concrete_sample, ("x", "x", 0.7, "o")), (core.binary_concrete_bwd, ("x", "x", 0.7, "x", "x", "o", "vo")),
    (core.probit_sample, "x x o"), (core.probit_log_prob, "x bit ro"), (core.probit_log_prob_bwd, "x bit r o o"),
    (core.probit_st_bwd, "x x o"), (core.normal_sample, "x pos x o"), (core.normal_sample_bwd, "x x o o"),
    (core.normal_log_prob, "x pos x ro"), (core.normal_log_prob_bwd, "x pos x r o o o"),
]
_SHAPES = {"x": (1, 1), "o": (1, 1), "pos": (1, 1), "bit": (1, 1), "r": (1,), "ro": (1,), "v": (1,), "vo": (1,)}


def _args(spec, gen):
    out = []
    for s in (spec.split() if isinstance(spec, str) else spec):
        if not isinstance(s, str):
            out.append(s)
        elif s == "pos":
            out.append(gen.uniform(0.3, 2.0, (1, 1)))
        elif s == "bit":
            out.append(np.ones((1, 1)))
        else:
            out.append(gen.normal(0, 1.2, _SHAPES[s]))
    return out


def _run_row(kernel, args, skipped):
    """The row code of kernel(*args) run as Python: each array argument a local holding its one
    value (`a3`), a skipped one None; returns the arrays with what the code wrote."""
    names = [None if j in skipped else (f"a{j}" if isinstance(a, np.ndarray) else repr(a)) for j, a in enumerate(args)]
    lines = rowcode.row_lines(kernel, names, _qualify, 1)
    env = {"cast": np.float64, "np": np, "scalar": scalar, "rng": rng, "core": core, "rows": rows}
    env.update({f"a{j}": a.reshape(-1)[0] for j, a in enumerate(args) if isinstance(a, np.ndarray)})
    exec(compile("\n".join(lines) + "\n", "<row code>", "exec"), env)
    return [(np.full_like(a, env[f"a{j}"]) if isinstance(a, np.ndarray) and j not in skipped else a)
            for j, a in enumerate(args)], lines


@pytest.mark.parametrize("kernel,spec", CASES, ids=[k.__name__ for k, _ in CASES])
def test_row_code_writes_what_the_kernel_writes(kernel, spec):
    gen = np.random.default_rng(7)
    args = _args(spec, gen)
    outs = [j for j, s in enumerate(spec.split() if isinstance(spec, str) else spec) if s in ("o", "ro", "vo")]
    want = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    kernel(*want)
    got, lines = _run_row(kernel, [a.copy() if isinstance(a, np.ndarray) else a for a in args], set())
    assert lines, f"{kernel.__name__}: no row code"
    for j in outs:
        np.testing.assert_allclose(got[j], want[j], rtol=1e-12, atol=1e-15, err_msg=f"{kernel.__name__} arg {j}")
    if len(outs) > 1 or kernel in (core.binary_concrete_bwd,):   # each skippable output skipped in turn
        for j in outs:
            skip_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
            skip_args[j] = np.zeros((0,) + args[j].shape[1:])
            want2 = [a.copy() if isinstance(a, np.ndarray) else a for a in skip_args]
            kernel(*want2)
            got2, lines2 = _run_row(kernel, [a.copy() if isinstance(a, np.ndarray) else a for a in args], {j})
            assert not any(f"a{j} " in ln for ln in lines2), f"{kernel.__name__}: writes the skipped a{j}"
            for k in outs:
                if k != j:
                    np.testing.assert_allclose(got2[k], want2[k], rtol=1e-12, atol=1e-15)


def test_the_rewrite_folds_skips_and_renames_locals():
    lines = rowcode.row_lines(core.normal_log_prob_bwd, ["m", "s", "x", "w", None, "gs", None], _qualify, 4)
    assert lines == ["g4_ = w", "q4_, w4_ = scalar.gaussian_nll_grad(x, m, s)", "gs -= cast(g4_ * w4_)"]
    assert rowcode.row_lines(core.sigmoid_bwd, ["a", "z", "g", None], _qualify, 1) == []
    assert rowcode.row_lines(core.row_sum_fwd, ["x", "c"], _qualify, 2) == ["s2_ = cast(0.0)", "s2_ += x", "c = cast(s2_)"]


def test_a_body_that_reads_other_cells_has_no_row_form():
    assert rowcode.has_row_form(core.affine_fwd) and rowcode.has_row_form(core.sigmoid_fwd)
    assert not rowcode.has_row_form(rows.expand_rows)   # hand-written, no ROW body
    with pytest.raises(rowcode.NoRowForm, match="reads"):
        rowcode.row_lines(core.sigmoid_fwd, [None, "z"], _qualify, 1)
    with pytest.raises(rowcode.NoRowForm, match="not 0 at width 1"):
        rowcode.row_lines(rows.take_cols, ["x", "2", "o"], _qualify, 1)
    assert not rowcode.has_row_form(core.bernoulli_sample_rep)   # an item body: i is no row
    assert not rowcode.has_row_form(core.softmax_fwd)            # a group body


def _kw(a, scale=1.0):
    return a * scale


def _body_branches(r, j, x, gx, out):
    flag = gx.shape[0] != 0          # folded: a test of a skipped array
    if x[r, j] > 0:
        big = True                   # assigned in a branch: kept, not folded
    else:
        big = False
    if flag and big:
        out[r, j] = _kw(x[r, j], scale=2.0)
    else:
        out[r, j] = x[r, j]


def _body_refold(r, j, x, gx, out):
    flag = gx.shape[0] != 0
    if x[r, j] > 0:
        flag = False
    out[r, j] = x[r, j] if flag else -x[r, j]


def _declared(body):
    from types import SimpleNamespace

    def kernel(*args):
        raise AssertionError("only its body is read")
    kernel.__declared__ = SimpleNamespace(body=body, lead=("r", "j"), shape="cells")
    kernel.__name__ = body.__name__
    return kernel


def test_tests_fold_only_where_they_hold_on_every_path():
    """A test folds where it is assigned once, unconditionally; a local assigned in a branch is
    kept as code (run here for both signs of x, and with gx present and skipped); a folded test
    assigned again is refused rather than rewritten wrongly. Keyword arguments are rewritten."""
    qualify = {id(_kw): "_kw"}.get
    kernel = _declared(_body_branches)
    for skipped in (False, True):
        lines = rowcode.row_lines(kernel, ["x", None if skipped else "gx", "out"], lambda o: qualify(id(o)), 1)
        assert any("big1_ = True" in ln for ln in lines)
        for x in (-0.5, 1.5):
            env = {"x": x, "gx": 0.0, "out": None, "cast": float, "_kw": _kw}
            exec("\n".join(lines), env)
            assert env["out"] == (2 * x if (not skipped and x > 0) else x)
    with pytest.raises(rowcode.NoRowForm, match="a test folded before"):
        rowcode.row_lines(_declared(_body_refold), ["x", "gx", "out"], lambda o: None, 1)


@pytest.mark.parametrize("text", ["s_z_0", "theta[12]", "grad[d]", "scalar.sigmoid", "ppl.kernels.math.scalar.like",
                                  "3", "-2", "0.5", "-0.25", "1e-08", "True", "None"])
def test_an_argument_is_built_as_python_reads_it(text):
    """rowcode.expression builds an argument's tree without parsing the lowering's text; oracle:
    the tree Python's own parser gives."""
    import ast
    assert ast.dump(rowcode.expression(text)) == ast.dump(ast.parse(text, mode="eval").body)


@pytest.mark.parametrize("text", ["a + b", "f(x)", "x[1:2]", "1.0 / B", "1.5.2", "x[", "3x"])
def test_any_other_argument_has_no_row_form(text):
    with pytest.raises(rowcode.NoRowForm, match="none of the forms"):
        rowcode.expression(text)


# ----- a call in one configuration's code: the pair's kernels read the partner's locals
def _pair_args(gen):
    """An antithetic pair (stride 1, off 1, span 2: rows 0 and 1 of one drawn row), as the CPU
    kernels take it: logits, the shared uniform, costs, row weights."""
    a = np.full((2, 1), gen.normal(0, 1.5))
    u = np.full((2, 1), gen.uniform(0.05, 0.95))
    b = np.zeros((2, 1))
    antithetic.antithetic_bernoulli(a, u, 1, 1, 2, b)
    return a, u, b, gen.normal(0, 2.0, 2), np.array([0.25, 0.25])


def _run_configs(kernel, spec, arrays):
    """The kernel's row code in the code of configuration 0, then 1, run as Python: an array
    argument is a local per configuration (`<name>_<c>`), a number its literal, "u" the shared
    noise (one local for both); returns the arrays as the code left them."""
    env = {"cast": np.float64, "np": np, "scalar": scalar}
    args = []
    for name, value in zip(spec, arrays):
        if name == "u":
            env["u"] = float(value[0, 0])
            args.append("u")
        elif isinstance(value, np.ndarray):
            for c in (0, 1):
                env[f"{name}_{c}"] = float(value.reshape(2, -1)[c, 0])
            args.append((f"{name}_0", f"{name}_1"))
        else:
            args.append(repr(value))
    for c in (0, 1):
        lines = rowcode.row_lines(kernel, args, _qualify, 3 + c, row=c)
        exec(compile("\n".join(lines) + "\n", "<row code>", "exec"), env)
    return [np.array([env[f"{n}_0"], env[f"{n}_1"]]).reshape(v.shape) if isinstance(v, np.ndarray) and n != "u"
            else v for n, v in zip(spec, arrays)]


@pytest.mark.parametrize("which", ["antithetic_bernoulli", "arm_grad", "disarm_grad", "scale_rows"])
def test_a_pairs_row_code_in_each_configuration_writes_what_its_kernel_writes(which):
    """Oracle: the CPU kernel on the pair's two rows. The row code of configuration c reads the
    partner's locals through `r + off * stride` and `slot_local`; the row code, run for both
    configurations, must leave the same numbers (float64, 1e-12), over draws where the pair
    agrees and where it differs."""
    gen = np.random.default_rng(11)
    for _ in range(12):
        a, u, b, L, rw = _pair_args(gen)
        ga = gen.normal(0, 1, (2, 1))
        spec, arrays = {
            "antithetic_bernoulli": (("a", "u", "stride", "off", "span", "b"), [a, u, 1, 1, 2, np.zeros((2, 1))]),
            "arm_grad": (("u", "L", "rw", "stride", "off", "span", "ga"), [u, L, rw, 1, 1, 2, ga]),
            "disarm_grad": (("a", "b", "L", "rw", "stride", "off", "span", "ga"), [a, b, L, rw, 1, 1, 2, ga]),
            "scale_rows": (("rw", "factor"), [rw, 0.5]),
        }[which]
        kernel = getattr(antithetic, which)
        want = [x.copy() if isinstance(x, np.ndarray) else x for x in arrays]
        kernel(*want)
        got = _run_configs(kernel, spec, [x.copy() if isinstance(x, np.ndarray) else x for x in arrays])
        out = len(spec) - 1 if which != "scale_rows" else 0
        np.testing.assert_allclose(got[out], want[out], rtol=1e-12, atol=1e-15, err_msg=which)


def test_the_partner_is_read_through_the_row_index_not_guessed():
    """Test of the test above: the same DisARM body with the partner read one row further
    (`r + 2 * off * stride`) reads configuration 2, which the pair has not: no row form."""
    with pytest.raises(rowcode.NoRowForm, match="configuration 2"):
        rowcode.row_lines(antithetic.disarm_grad, [("a0", "a1"), ("b0", "b1"), ("L0", "L1"), ("w0", "w1"),
                                                   "2", "1", "2", ("g0", "g1")], _qualify, 1, row=0)


def _body_row_as_value(r, j, x, out):
    out[r, j] = x[r, j] * r


def test_the_row_index_never_reaches_the_code():
    """The row index folds as a number where a body computes a row; used as a value it would be
    a configuration's number, not the row's: no row form."""
    with pytest.raises(rowcode.NoRowForm, match="row index as a value"):
        rowcode.row_lines(_declared(_body_row_as_value), [("x0", "x1"), ("o0", "o1")], _qualify, 1, row=1)
    lines = rowcode.row_lines(core.sigmoid_fwd, [("x0", "x1"), ("o0", "o1")], _qualify, 1, row=1)
    assert lines == rowcode.row_lines(core.sigmoid_fwd, ["x1", "o1"], _qualify, 1)


def _run_fold(kernel, L, rw, state, slot, decay, b, per_row=False):
    """The fold's row code run as Python around a loop over drawn rows d of two configurations
    each (rows 2d and 2d + 1): its first part before the loop, its row part in each configuration's
    code (a local per configuration: `L_0`, `L_1`, ...), its last part after the loop (or, with
    `per_row`, all three parts for each drawn row, as a kernel of one row would run: the
    misplacement the test of the test makes)."""
    per_config = [("L_0", "L_1"), ("rw_0", "rw_1"), "state", repr(slot), repr(decay), ("b_0", "b_1"), "True"]
    env = {"cast": np.float64, "np": np, "scalar": scalar, "state": state}

    def run(part, row=None):
        lines = rowcode.row_lines(kernel, per_config, _qualify, 5, row=row, part=part)
        exec(compile("\n".join(lines) + "\n", "<row code>", "exec"), env)
    run("before")
    for d in range(L.shape[0] // 2):
        if per_row and d:
            run("before")
        for c in (0, 1):
            env[f"L_{c}"], env[f"rw_{c}"] = L[2 * d + c], rw[2 * d + c]
            run("each", row=c)
            b[2 * d + c] = env[f"b_{c}"]
        if per_row:
            run("after")
    if not per_row:
        run("after")


def test_a_fold_over_the_rows_runs_in_parts_around_the_row_loop():
    """The moving-average baseline (kernels/families/rows.py, FOLDS): its running mean read
    before the rows, each row's baseline and weighted cost in the row code of its configuration,
    the mean updated after the rows. Oracle: the CPU kernel on the same rows, at a first step (the
    mean seeded) and a later one, with a row of weight 0 whose cost is infinite (it adds
    nothing). Test of the test: the three parts run for each drawn row in turn (a batch of one
drawn row each) leave another mean."""
    gen = np.random.default_rng(5)
    L, rw = gen.normal(0, 2.0, 6), gen.uniform(0.1, 1.0, 6)
    L[3], rw[3] = np.inf, 0.0
    for seeded in (0.0, 1.0):
        state = np.array([9.0, 0.7, seeded, 3.0])
        want_state, want_b = state.copy(), np.zeros(6)
        rows.moving_average_baseline(L, rw, want_state, 1, 0.9, want_b, True)
        got_state, got_b = state.copy(), np.zeros(6)
        _run_fold(rows.moving_average_baseline, L, rw, got_state, 1, 0.9, got_b)
        np.testing.assert_allclose(got_b, want_b, rtol=1e-12)
        np.testing.assert_allclose(got_state, want_state, rtol=1e-12)
        wrong_state = state.copy()
        _run_fold(rows.moving_average_baseline, L, rw, wrong_state, 1, 0.9, np.zeros(6), per_row=True)
        assert abs(wrong_state[1] - want_state[1]) > 1e-3
    with pytest.raises(rowcode.NoRowForm, match="folds over the rows"):
        rowcode.row_lines(rows.moving_average_baseline, ["L", "w", "state", "1", "0.9", "b", "True"], _qualify, 1)
    with pytest.raises(rowcode.NoRowForm, match="no fold"):
        rowcode.row_lines(core.sigmoid_fwd, ["x", "o"], _qualify, 1, part="each")


def _fold_by_row(L, state, b):
    for r in range(L.shape[0]):
        b[r] = state[r]


def test_a_folds_whole_array_is_never_indexed_by_the_row(monkeypatch):
    """A whole array (a fold's state) stands for the step's own array: indexed by the row, it
    would read another row's number in each row's code: no row form."""
    import sys
    monkeypatch.setattr(sys.modules[__name__], "FOLDS", {"_fold_by_row": ("state",)}, raising=False)
    with pytest.raises(rowcode.NoRowForm, match="by the row"):
        rowcode.row_lines(_fold_by_row, ["L", "state", "b"], _qualify, 1, part="each")
