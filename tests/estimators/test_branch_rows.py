"""The extra rows of the branch estimators (ARM / DisARM pairs, ARMS's coupled draws, mvd's
branches, categorical DisARM's pair) and REBAR's share one row digit where they add up
(ppl.lowering.rows.plan_rows): a chain of such nodes takes 1 + the sum of their extra rows per
drawn row, not the product. Each node is drawn plainly on the other nodes' rows (following its
inputs there), and only the drawn rows weigh in the objective.

Oracle: tests/exact.py (every Bernoulli / categorical node enumerated, central differences),
float64. Statistic: tests/stats.py's projection ratio of the mean estimate on the exact gradient,
with its standard error, and the per-entry z; `stats.assert_unbiased_tuned` sizes the draws for a
ratio SE of about 0.8% and requires the same estimates scaled by 1.05 and 0.95 to fail, so each
case detects a 5% bias (the smallest detectable, 4 SE, is printed with -s).
"""
import re

import numpy as np
import pytest

import ppl
from ppl import Affine, Bernoulli, Categorical, Model

import exact
import stats

X = np.array([[0.5], [-1.0]])


def walk(name, depth):
    """A random walk of `depth` steps whose up-probability depends on the state: up_t ~
    Bernoulli(sigmoid(w_t s_{t-1} + b_t)), s_t = s_{t-1} + 2 up_t - 1 (s_0 = x); costs on the final
    state and on one intermediate state, so every node has costs downstream of it."""
    with Model(name) as m:
        s = m.input("x", 1)
        for t in range(depth):
            up = Bernoulli(f"up{t}", logits=Affine(s, 1, name=f"e{t}"))
            s = s + 2.0 * up - 1.0
            if t == depth // 2:
                m.cost("mid", ppl.total(0.1 * (s * s)))
        m.cost("end", ppl.gaussian_nll(s, ppl.const(1.5, 1), ppl.const(2.0, 1)))
    return m


CYCLE = ["disarm", "arm", ("arms", {"n": 3}), "mvd", "score", "disarm"]
EXTRA = {"disarm": 1, "arm": 1, "arms": 2, "mvd": 1, "score": 0}   # extra rows of a width-1 node


def _estimators(depth, cycle, shift=0):
    return {f"up{t}": cycle[(t + shift) % len(cycle)] for t in range(depth)}


def _check(m, est, rows, label, samples=1):
    prog = m.compile(dtype=np.float64, estimators=est, seed=2, samples=samples)
    assert prog.rows_per_data_row == rows, (prog.rows_per_data_row, rows)
    assert f"rows per data row: {rows}" in " ".join(prog.explain().split())
    P = exact.model_params(prog)
    rng = np.random.default_rng(5)
    for k in P:   # away from the symmetric initial point: every node's gradient clearly nonzero
        P[k] = P[k] + 0.4 * rng.normal(size=np.shape(P[k]))
        prog.params[k][...] = P[k]
    names = list(P)
    e = stats.flat(exact.gradient(m, P, {"x": X}), names)
    r, _ = stats.assert_unbiased_tuned(prog, {"x": X}, names, e, label)
    assert r.detectable < 0.05
    return prog


@pytest.mark.parametrize("shift", [0, 3])
def test_a_walk_of_ten_mixed_branch_estimators_is_unbiased_with_rows_that_add_up(shift):
    """Ten state-dependent steps, DisARM / ARM / ARMS / mvd / score in turn: 1 + the sum of the
    extra rows (the product would be 2 x 2 x 3 x 2 x 1 ... = 576 or more)."""
    est = _estimators(10, CYCLE, shift)
    rows = 1 + sum(EXTRA[v if isinstance(v, str) else v[0]] for v in est.values())
    _check(walk(f"walk10_{shift}", 10), est, rows, f"walk of 10, cycle shifted {shift}")


def test_a_walk_of_twelve_disarm_nodes_takes_thirteen_rows():
    _check(walk("walk12_disarm", 12), "disarm", 13, "walk of 12, DisARM at every node")


def test_two_samples_and_an_enumerated_node_multiply_the_shared_digit():
    """K = 2 draws per data row, and one node enumerated inside the walk (its digit multiplies).
    The branch nodes above it (DisARM, ARM) keep digits of their own: their estimates marginalise
    their rows' costs over its configurations, weighted by the rows' weights, which a shared
    digit's extra rows do not carry. Below it mvd and DisARM share one: 1 + 1 + 1 rows.
    Rows per data row: K x 2 x 2 x 2 x 3."""
    est = _estimators(6, CYCLE)
    est["up2"] = "enumerate"
    _check(walk("walk6_enum", 6), est, 2 * 2 * 2 * 2 * 3, "walk of 6 with an enumerated node, K = 2", samples=2)


def test_rebar_and_categorical_disarm_share_the_digit_with_the_pairs():
    """A categorical node (categorical DisARM's pair) between Bernoulli nodes under REBAR (its 2
    control-variate rows) and DisARM: 1 + 2 + 1 + 1 rows."""
    with Model("mixed_branch_chain") as m:
        x = m.input("x", 1)
        h1 = Bernoulli("h1", logits=Affine(x, 1, name="e1"))
        c = Categorical("c", logits=Affine(h1, 3, name="e2"), classes=3)
        h3 = Bernoulli("h3", logits=Affine(c, 1, name="e3"))
        m.cost("lp", ppl.log_prob(c))
        m.cost("end", ppl.bernoulli_nll(Affine(h3, 1, name="d"), target=x * 0.0 + 1.0))
        m.cost("side", ppl.total(0.3 * (h1 * x)))
    _check(m, {"h1": "rebar", "c": "cat_disarm", "h3": "disarm"}, 5, "rebar -> cat_disarm -> disarm")


def test_a_lone_branch_node_keeps_its_own_digit_and_its_halved_weights():
    """One DisARM node alone: the pair has its digit of its own (1, 1, 2), each row of the pair
    weighs half the drawn row (antithetic.scale_rows), no shared digit's weights."""
    prog = walk("walk1", 1).compile(dtype=np.float64, estimators="disarm", lowering="arrays")
    src = prog.source
    assert re.search(r"antithetic_bernoulli(_col1)?\(", src) and ", 1, 1, 2, " in src and "scale_rows(" in src
    assert "branch_weights(" not in src
    two = walk("walk2", 2).compile(dtype=np.float64, estimators="disarm", lowering="arrays").source
    assert "branch_weights(" in two and "scale_rows(" not in two


def test_rows_beyond_the_bound_are_refused_naming_the_nodes():
    with Model("enum17") as m:
        h = m.input("x", 1)
        for t in range(17):
            h = Bernoulli(f"b{t}", logits=Affine(h, 1, name=f"e{t}"))
        m.cost("c", ppl.total(h))
    with pytest.raises(ppl.ModelError, match=r"the step would evaluate 131072 rows per draw \(> 65536\): 'b\d+' \(estimator 'enumerate'\) x2, "
                                             r".*enumerate fewer or smaller nodes.*'score'"):
        m.compile(estimators="enumerate")
    with Model("mvd_wide") as m:
        x = m.input("x", 1)
        hs = [Bernoulli(f"h{i}", logits=Affine(x, 1024, name=f"e{i}")) for i in range(64)]
        m.cost("c", ppl.total(ppl.concat(hs)))
    with pytest.raises(ppl.ModelError, match=r"the step would evaluate 65537 rows per draw \(> 65536\): the extra rows "
                                             r"of 64 nodes \('h0', 'h1', 'h2', \.\.\.\) \+65536"):
        m.compile(estimators="mvd")
