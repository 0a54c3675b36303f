"""The generated step sources stay the same up to names (tests/golden.py): every bundled model
under every estimator that applies to all its stochastic nodes, each policy's choice, graphs whose
nodes take different estimators, every law, user functions, and the CUDA target."""
import difflib

import pytest

import golden

CASES = dict(golden.cases())
RECORDED = golden.load()


def test_the_recorded_cases_are_the_cases():
    assert sorted(CASES) == sorted(RECORDED), "tests/golden.py's cases changed: run python tests/golden.py --write"


@pytest.mark.parametrize("case", sorted(CASES))
def test_step_source_is_unchanged_up_to_names(case):
    try:
        now = CASES[case]()
    except golden.ppl.ModelError as e:
        now = f"refused: {e}"
    was = RECORDED[case]
    assert now.startswith("refused: ") == was.startswith("refused: "), f"{case}: was {was[:200]!r}, now {now[:200]!r}"
    if now.startswith("refused: "):
        return   # a refusal's wording is not the step
    if golden.canonical(now) != golden.canonical(was):
        diff = "\n".join(difflib.unified_diff(was.splitlines(), now.splitlines(), "recorded", "now", lineterm="", n=1))
        pytest.fail(f"{case}: the generated step changed beyond names:\n{diff[:6000]}")


SRC = '''"""Generated."""
# kernels version abc
from ppl.kernels import cpu_rows as R_
def step(theta, grad, state, ws2, ws1, inputs, B, seed, t, mode):
    v_h = ws2[3]
    R_.fill2(v_h, 0.5, rw_)
    if mode == 1:
        K_.bernoulli_sample(v_h, 2, g_h)
'''


def test_canonical_form_ignores_names_only():
    """The test of the test: renamed buffers, aliases and the kernels version read alike; a changed
    argument order, constant, kernel, index or nesting does not."""
    same = (SRC.replace("v_h", "value_h").replace("R_.", "rows.").replace("cpu_rows as R_", "cpu_rows as rows")
            .replace("abc", "def"))
    assert golden.canonical(same) == golden.canonical(SRC)
    for changed in (SRC.replace("fill2(v_h, 0.5, rw_)", "fill2(rw_, 0.5, v_h)"),
                    SRC.replace("0.5", "0.25"),
                    SRC.replace("fill2", "fill1"),
                    SRC.replace("ws2[3]", "ws2[4]"),
                    SRC.replace("        K_.", "    K_."),
                    SRC.replace("v_h, 2, g_h", "v_h, 2, v_h")):
        assert golden.canonical(changed) != golden.canonical(SRC)


def test_a_kernel_call_emitted_as_text_is_found():
    """The test of golden.generate_source's check: a kernel call held as text, in a loop block, an
    If's branch or after `loss +=` too, is found; its record (one whose value `loss` takes, or a
    check's test, too), a row-code line and a plain line are not."""
    from ppl.calls import KERNELS, Call, call
    from ppl.lowering.ir import If, Loop, Stmt, check
    loop = Loop(3, False, {})
    loop.body = [Stmt("rows.zero1(L_a)")]
    total = Call(KERNELS.rows.weighted_total, ("rw", "c", "tot"), assign=("loss", "+="))
    assert str(total) == "loss += rows.weighted_total(rw, c, tot)"
    stmts = [Stmt(call(KERNELS.rows.zero1, "L_b")), Stmt("core.add_fwd(a, b, out)"), Stmt("x = scalar.sig(y)"),
             If(Stmt("mode == 0"), (Stmt("rows.zero1(L_c)"),)), Stmt(total),
             check(call(KERNELS.rows.all_finite2, "v"), "bad"), Stmt("loss += rows.weighted_total(rw, c, tot)"), loop]
    assert golden.unrecorded_calls(stmts) == ["core.add_fwd(a, b, out)", "rows.zero1(L_c)",
                                              "loss += rows.weighted_total(rw, c, tot)", "rows.zero1(L_a)"]


def test_a_statement_written_as_text_is_found():
    """The test of golden.generate_source's check that every statement is a record: a line of
    text is found, in a loop block and as an If's test too; a call record, a check's raise, a line
    of calls.code, the loss's definition and a row statement's line are not."""
    from ppl.calls import KERNELS, Const, call, code
    from ppl.lowering.ir import Define, For, If, Loop, Raise, Stmt
    from ppl.statements import Assign
    loop = Loop(3, False, {})
    loop.body = [If(Stmt("it_ == 0"), ()), If(Stmt(code("{it} == 0", it="it_")), ())]
    (row,) = Assign("s_x", "s_y").lines()
    stmts = [Stmt(call(KERNELS.rows.zero1, "L_b")), Stmt(Raise("bad")), Stmt(Define("loss", Const("0.0"))),
             Stmt(row), Stmt("v = w"), For("r", Stmt(code("{v}.shape[0]", v="v")), (Stmt(Stmt(code("{v}", v="v"))),)),
             loop]
    assert golden.text_statements(stmts) == ["v = w", "it_ == 0"]


def test_a_call_whose_record_misnames_its_text_is_found():
    """The test of golden.generate_source's second check: names read from a call's record (every
    argument form the lowering passes) agree with the tokenizer's on good records, and a record
    whose text names differently from its record (a buffer claimed by a Flat that prints another)
    is found."""
    from ppl.calls import KERNELS, Call, Column, Flat, Head, call
    from ppl.estimators.protocol import NO_GRAD
    from ppl.lowering.ir import Raise, Stmt
    good = [Stmt(Call(KERNELS.rows.weighted_total, ("rw", Flat("c_h"), "tot"), assign=("loss", "+="))),
            Stmt(call(KERNELS.rows.mul_rows, Column("cw_", "rw_"), "w", 1.0)),
            Stmt(call(KERNELS.core.all_unit, Head("n0_z", 4))),
            Stmt(call(KERNELS.rows.add_rows, NO_GRAD, "np.nan", (2, 3), "0.5 / B", "x[it_ * 3]")),
            Stmt(Raise("Normal 'z': scale 's' has values <= 0 or NaN; make it positive"))]
    assert golden.misread_names(good) == []
    with pytest.raises(ValueError, match="no double quote"):
        Raise('a "quoted" name')   # would end the message's literal early
    bad = Flat("c_h")
    bad.buffer = "c_hh"   # the record says one buffer, its text another
    wrong = Stmt(call(KERNELS.rows.add_rows, bad, "tot"))
    assert golden.misread_names(good + [wrong]) == [str(wrong)]


def test_an_untyped_argument_of_a_call_is_found():
    """The test of golden.generate_source's third check: a call built by the step's builder holds
    its buffers, views, step arguments, markers and constants as records; one built around it,
    and text of a number or an expression, are found."""
    from ppl.calls import KERNELS, Buf, Const, StepArg, View, call, per_row
    from ppl.lowering.ir import Stmt, StepBuilder
    from ppl.lowering.layout import Layout
    b = StepBuilder(Layout())
    b.L.ws2.append(("v_h", "R", 4))
    b.bind("v_h", "ws2", 0)
    b.bind("p_W", "view", expr="rows.flat_view(theta, 0, (4, 4))")
    b.emit(call(KERNELS.core.affine_fwd, "v_h", "p_W", "seed", "NO_GRAD", "True"))
    (st,) = b.fwd
    kinds = [type(a).__name__ for a in st.call.args]
    assert kinds == ["Buf", "View", "StepArg", "NoGrad", "Const"] and st.call.args[0].width == 4
    assert isinstance(st.call.args[1], View) and isinstance(st.call.args[2], StepArg) and isinstance(st.call.args[0], Buf)
    assert golden.untyped_args([st]) == []
    around = Stmt(call(KERNELS.core.affine_fwd, "v_h", "p_W"))   # not through the builder
    assert golden.untyped_args([st, around]) == ["v_h", "p_W"]
    text = Stmt(call(KERNELS.rows.config_weights, 2, 0, 0, "1.0 / B", Const("0.5"), per_row(1.0)))
    assert golden.untyped_args([text]) == ["1.0 / B"] and text.call.args[-1].names == (("B", 6, 7),)
