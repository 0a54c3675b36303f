"""docs/guides/writing-an-estimator.md's ARM, as written: a user's estimator on the public protocol
(ppl.Estimator, ppl.register_estimator, the context), checked unbiased against exact enumeration
by the guide's own `gradient_stats` block.

Oracle: ppl.diagnostics.exact_gradient (every Bernoulli node enumerated, float64). Check: the
projection ratio `proj` within Z_PROJ = 4 standard errors of 1, and 4 `proj_se` <= 5% (tests/stats.py's
Z_PROJ and BIAS); 200 draws of 320 rows each give proj_se of about 0.002 (a 0.8% bias along the exact
gradient detectable). Test of the test: the same estimator with its estimate scaled by 1.05 (a 5%
bias of the estimator's part, which moves `proj` by its share of |exact|^2, about 1.6% here) fails
the same check. The user's ARM also gives the built-in `arm`'s gradients at the same seeds, and
stays unbiased stacked over and under nodes with configuration rows of their own.
"""
import re
from pathlib import Path

import numpy as np
import pytest
from numba import njit

import ppl
import stats
from ppl.estimators import REGISTRY

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "writing-an-estimator.md"


def _block(text, heading, index=0):
    """The `index`-th python block of the guide's section `## heading`."""
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n")[1 + index].split("```")[0]


@pytest.fixture(autouse=True)
def registry():
    """Leave ppl's registry as it was (the guide registers my_score and my_arm)."""
    before = dict(REGISTRY)
    yield
    REGISTRY.clear()
    REGISTRY.update(before)


def test_the_guide_s_arm_is_unbiased_with_stated_power():
    text = GUIDE.read_text()
    scope = {}
    exec(_block(text, "The protocol"), scope)                  # the model m (and my_score)
    arm = _block(text, "A worked example: ARM")
    # user code on the public protocol: of ppl, only the base class, the registration and NO_GRAD
    assert set(re.findall(r"\bppl\.(\w+)", arm)) == {"Estimator", "register_estimator", "NO_GRAD"}
    exec(arm, scope)                                            # my_arm: about 30 lines of user code
    assert "my_arm" in REGISTRY
    exec(_block(text, "Checking an estimator's bias"), scope)   # gradient_stats, its two asserts
    mine, builtin = scope["mine"], scope["builtin"]
    assert abs(mine.proj - 1) <= stats.Z_PROJ * mine.proj_se, (mine.proj, mine.proj_se)
    assert stats.Z_PROJ * mine.proj_se <= stats.BIAS, mine.proj_se
    assert mine.max_abs_bias_in_se <= stats.Z_ENTRY, mine.max_abs_bias_in_se
    # the same estimator as ppl's own: the same noise, pairs and weights give the same draws
    for k in mine.mean:
        assert np.allclose(mine.mean[k], builtin.mean[k], rtol=1e-9, atol=1e-12), k

    # the test of the test: an estimate 1.05 times the estimator's fails the same check
    arm_grad = scope["arm_grad"]

    @njit
    def arm_grad_105(u, L, rw, stride, grad_logits):
        arm_grad(u, L, 1.05 * rw, stride, grad_logits)   # the estimate is linear in the weights

    @ppl.register_estimator
    class MyARM105(scope["MyARM"]):
        name = "my_arm_105"

        def estimate(self, ctx):
            (grad_logits,) = ctx.param_grads()
            if grad_logits is ppl.NO_GRAD:
                return
            ctx.call(arm_grad_105, ctx.drawn_noise(), ctx.downstream_cost(), ctx.rows.weights,
                     ctx.rows.digit[0], grad_logits)

    (biased,) = ppl.diagnostics.gradient_stats(scope["m"], scope["data"], ["my_arm_105"], draws=200, warm=0)
    print(ppl.diagnostics.table([mine, builtin, biased]))
    assert abs(biased.proj - 1) > stats.Z_PROJ * biased.proj_se, (biased.proj, biased.proj_se)
    # its draws are the estimator's plus 5% of the estimator's part: proj moves by that part's share
    assert biased.proj > mine.proj + 4 * mine.proj_se


@pytest.mark.parametrize("h1,h2", [("my_arm", "my_arm"), ("my_arm", "disarm"), ("score", "my_arm")])
def test_the_guide_s_arm_stacked(h1, h2):
    """Over and under another node with configuration rows of its own (the weights each draw
    shares out multiply), on the two-layer model of tests/small_models.py."""
    from small_models import DATA, two_layer_sbn
    exec(_block(GUIDE.read_text(), "A worked example: ARM"), {})
    data = {"x": np.tile(DATA["x"], (160, 1))}
    (st,) = ppl.diagnostics.gradient_stats(two_layer_sbn(f"guide_{h1}_{h2}"), data, [{"h1": h1, "h2": h2}],
                                           draws=200, warm=0)
    print(h1, h2, st.proj, st.proj_se, st.max_abs_bias_in_se)
    assert abs(st.proj - 1) <= stats.Z_PROJ * st.proj_se and stats.Z_PROJ * st.proj_se <= stats.BIAS, st
    assert st.max_abs_bias_in_se <= stats.Z_ENTRY, st


def test_the_guide_s_new_row_shape_is_unbiased_with_stated_power():
    """The guide's "A new row shape": DisARM with each node's pair on a digit of its own (a
    RowShape of its own, nothing else changed), as written, on two stacked layers. Oracle:
    ppl.diagnostics.exact_gradient (enumeration). Check: `proj` within Z_PROJ standard errors of
    1 and Z_PROJ `proj_se` <= 5%; every entry within Z_ENTRY; the test of the test: the same
    estimates scaled by 1 +- BIAS fail the projection check (proj and its SE scale with them).
    The variant evaluates 4 rows per draw where DisARM's shared digit takes 3, and its gradient
    varies less than DisARM's on this model."""
    text = GUIDE.read_text()
    scope = {}
    exec(_block(text, "The protocol"), scope)             # imports, ppl, Model, Bernoulli ...
    exec(_block(text, "A new row shape"), scope)
    own, shared = scope["own"], scope["shared"]
    assert abs(own.proj - 1) <= stats.Z_PROJ * own.proj_se, (own.proj, own.proj_se)
    assert stats.Z_PROJ * own.proj_se <= stats.BIAS, own.proj_se
    assert own.max_abs_bias_in_se <= stats.Z_ENTRY, own.max_abs_bias_in_se
    for f in (1 + stats.BIAS, 1 - stats.BIAS):   # the test of the test
        assert abs(f * own.proj - 1) > stats.Z_PROJ * f * own.proj_se, f
    assert own.total_variance < shared.total_variance, (own.total_variance, shared.total_variance)
    from ppl.compiler.pipeline import generate_source
    rows = {e: generate_source(scope["m2"], estimators=e) for e in ("disarm_own_digits", "disarm")}
    assert "rows.expand_rows(n0_h1, 4)" in rows["disarm_own_digits"] and "rows.expand_rows(n0_h1, 3)" in rows["disarm"]
