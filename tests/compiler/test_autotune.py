"""Policy "autotune" (ppl/compiler/autotune.py): the same choice on two runs, the table behind it, and
the decision rule on made-up measurements."""
import math

import numpy as np
import pytest

import ppl
from ppl import Affine, Bernoulli, Model, ModelError
from ppl.compiler import autotune as A

X = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])


def _two_layers():
    """x -> h1 (8 units: 256 values, too many to enumerate) -> h2 (2 units: 4 values)."""
    with Model("tune2") as m:
        x = m.input("x", 4)
        h1 = Bernoulli("h1", logits=Affine(x, 8, name="q1"))
        h2 = Bernoulli("h2", logits=Affine(h1, 2, name="q2"))
        m.cost("recon", ppl.bernoulli_nll(Affine(h1, 4, name="p0"), target=x))
        m.cost("prior1", ppl.bernoulli_nll(Affine(h2, 8, name="p1"), target=h1))
        m.cost("logq1", ppl.log_prob(h1))
        m.cost("logq2", ppl.log_prob(h2))
    return m


@pytest.fixture(scope="module")
def runs():
    """Two independent autotune compiles of the same model, seed and pilot data."""
    m = _two_layers()
    return [m.compile(dtype=np.float64, samples=2, policy="autotune", pilot={"x": X}, seed=3) for _ in range(2)]


def test_autotune_gives_the_same_choice_on_two_runs(runs):
    choices = [{n.name: (ch.estimator, ch.options) for n, (ch, _) in p.choices.items()} for p in runs]
    assert choices[0] == choices[1]
    measured = [[(r["node"], r["estimator"], r["variance"], r["se"], r["rows"], r["chosen"])
                 for r in p.autotune_table] for p in runs]
    assert measured[0] == measured[1]   # the variances bit for bit: the same draws


def test_autotune_table_candidates_exclusions_and_choice(runs):
    prog = runs[0]
    table = prog.autotune_table
    by = {(r["node"], r["estimator"]): r for r in table}
    # measured: the unbiased estimators that apply (ARMS and, on these narrow nodes, mvd with them); excluded
    # by rule, never compiled: arm, relax, double_cv, rodeo and enumeration of h1's 256 values; h2's 4 values
    # are enumerated
    assert {e for n, e in by if n == "h1" and by[n, e]["rows"]} == {"score", "disarm", "rebar", "arms", "mvd",
                                                                    "stochastic_derivative"}
    assert {e for n, e in by if n == "h2" and by[n, e]["rows"]} == {"score", "disarm", "rebar", "enumerate", "arms",
                                                                    "mvd", "stochastic_derivative"}
    for key in [("h1", "arm"), ("h1", "relax"), ("h1", "enumerate"), ("h2", "arm"), ("h1", "double_cv"),
                ("h1", "rodeo")]:
        assert by[key]["why"].startswith("excluded") and not by[key]["rows"]
    # rows per data row (K = 2 draws) while h1 is measured, h2 keeping its default (DisARM's pair): score on
    # h1 leaves the pair's digit alone (2); ARMS's n = 4 coupled draws and mvd's 8 units add their extra
    # rows to the pair's in the digit they share (1 + 3 + 1, 1 + 8 + 1)
    assert by["h1", "score"]["rows"] == 2 * 2
    assert by["h1", "arms"]["rows"] == 2 * (1 + 3 + 1)
    assert by["h1", "mvd"]["rows"] == 2 * (1 + 8 + 1)
    assert by["h2", "enumerate"]["rows"] == 4 * by["h2", "score"]["rows"]    # rows: K x the configurations
    for node in ("h1", "h2"):
        rows = [r for r in table if r["node"] == node and r["rows"]]
        (pick,) = [r for r in rows if r["chosen"]]
        assert prog.choices[prog.model.nodes[node]][0].estimator == pick["estimator"]
        assert all(r["score"] == r["variance"] * r["rows"] and r["us_per_step"] > 0 for r in rows)
        # nothing beats the pick's score by more than the tie margin
        assert min(r["score"] for r in rows) * (1 + A.TIE_MARGIN) >= pick["score"] or "tied" in pick["why"]
    text = prog.explain()
    assert "autotune (* chosen)" in text and "excluded: DisARM applies" in text and " * " in text
    with pytest.raises(ModelError, match="needs pilot data"):
        _two_layers().compile(policy="autotune")


def test_mvd_is_measured_on_narrow_nodes_only():
    """mvd's rows per draw grow with the node (one per unit): autotune measures it up to
    mvd.AUTOTUNE_ROWS rows per draw and names the rows where it does not."""
    from types import SimpleNamespace
    from ppl.estimators import REGISTRY, mvd

    def info(width, kind="bernoulli", K=None):
        return SimpleNamespace(node=SimpleNamespace(width=width, kind=kind, attrs={"K": K} if K else {}))
    est = REGISTRY["mvd"]
    assert est.not_measured(info(mvd.AUTOTUNE_ROWS - 1)) is None
    why = est.not_measured(info(mvd.AUTOTUNE_ROWS))
    assert why.startswith(f"{mvd.AUTOTUNE_ROWS + 1} rows per draw")
    assert est.not_measured(info(12, "normal")).startswith("37 rows per draw")     # 1 + 3 x 12
    assert est.not_measured(info(8 * 4, "categorical", K=4)) is None             # 1 + 8 groups x 3


def _c(name, var, rows, seconds, se=0.0):
    return A.Candidate("h", name, var, se, rows, [seconds] * 3)


def test_decide_least_variance_x_rows_then_ties():
    # a clear winner on variance x rows, whatever the times
    cs = [_c("score", 10.0, 4, 1e-3), _c("disarm", 3.0, 8, 9e-3), _c("rebar", 5.0, 20, 5e-3)]
    assert A.decide(cs, "disarm").estimator == "disarm"
    assert "1.67x the least" in cs[0].verdict
    # within the 10% margin: the fewest rows, whatever the times
    for t in (1e-3, 9e-3):
        cs = [_c("score", 10.0, 4, t), _c("disarm", 5.2, 8, 1.9e-3)]
        assert A.decide(cs, "disarm").estimator == "score" and "more rows" in cs[1].verdict
    # tied on score and rows: one more than 2x slower (median of the paired ratios) drops out ...
    cs = [_c("pathwise", 1.0, 4, 3e-3), _c("price", 1.05, 4, 1e-3)]
    cs[0].blocks = [3e-3, 1e-3, 3e-3]            # one round under load does not decide
    assert A.decide(cs, "pathwise").estimator == "price" and "3.0x the time of 'price'" in cs[0].verdict
    # ... else the rule table's choice, then the name
    assert A.decide([_c("pathwise", 1.0, 4, 1.5e-3), _c("price", 1.05, 4, 1e-3)], "pathwise").estimator == "pathwise"
    cs = [_c("enumerate", 0.0, 2, 1e-6), _c("disarm", 0.0, 2, 1e-6)]
    assert A.decide(cs, "disarm").estimator == "disarm"
    assert A.decide([_c("enumerate", 0.0, 2, 1e-6), _c("disarm", 0.0, 2, 1e-6)], "score").estimator == "disarm"


def test_decide_margin_widens_with_the_standard_error():
    # scores 40 and 32, 25% apart: tied when the variances' standard errors are 15% each (2 SE of the
    # ratio: 42%), not when they are 1%
    assert A.decide([_c("score", 10.0, 4, 1e-3, se=1.5), _c("disarm", 4.0, 8, 1e-3, se=0.6)], "x").estimator == "score"
    assert A.decide([_c("score", 10.0, 4, 1e-3, se=0.1), _c("disarm", 4.0, 8, 1e-3, se=0.04)], "x").estimator == "disarm"
    # every variance non-finite: the rule table's choice
    cs = [_c("score", math.inf, 4, 1e-3), _c("disarm", math.nan, 8, 1e-3)]
    assert A.decide(cs, "disarm").estimator == "disarm"
