"""The REBAR nodes of a graph share one row digit whose rows add up (ppl.lowering.rows.plan_rows):
the drawn row, then each node's control-variate rows. Two layers take 1 + 2 + 2 rows per drawn row
with eta and the temperature fixed (1 + 4 + 4 trained), not 3 x 3 (5 x 5).

Unbiasedness with layouts the stacked-pair matrix (tests/estimators/test_mixed_matrix.py: REBAR over REBAR,
trained) does not build: two REBAR nodes side by side coupled by a product, and a three-layer chain
REBAR (trained) -> REBAR (fixed) -> DisARM, whose antithetic digit multiplies the shared one.

Oracle: tests/exact.py (enumeration of the Bernoulli nodes, central differences), float64.
Statistic: tests/stats.py's projection ratio with its standard error and the per-entry z;
`stats.assert_unbiased_tuned` sizes the draws for a ratio SE of about 0.8% and requires the same
estimates scaled by 1.05 and 0.95 to fail, so each test detects a 5% bias (the smallest
detectable, printed with -s, is 4 SE of the ratio).
"""
import numpy as np

import ppl
from ppl import Affine, Bernoulli, Model

import exact
import stats

X = np.array([[1., 0., 1.], [0., 1., 1.]])


def siblings(name="rebar_siblings"):
    """h1, h2 both from x (neither below the other), coupled by the cost of h1 * h2."""
    with Model(name) as m:
        x = m.input("x", 3)
        h1 = Bernoulli("h1", logits=Affine(x, 2, name="e1"))
        h2 = Bernoulli("h2", logits=Affine(x, 2, name="e2"))
        m.cost("lp1", ppl.log_prob(h1))
        m.cost("lp2", ppl.log_prob(h2))
        m.cost("rec", ppl.bernoulli_nll(Affine(h1 * h2, 3, name="d"), target=x))
        m.cost("r1", ppl.bernoulli_nll(Affine(h1, 3, name="d1"), target=x))
    return m


def chain(name="rebar_chain"):
    with Model(name) as m:
        x = m.input("x", 3)
        h1 = Bernoulli("h1", logits=Affine(x, 2, name="e1"))
        h2 = Bernoulli("h2", logits=Affine(h1, 2, name="e2"))
        h3 = Bernoulli("h3", logits=Affine(h2, 2, name="e3"))
        m.cost("lp1", ppl.log_prob(h1))
        m.cost("lp2", ppl.log_prob(h2))
        m.cost("rec", ppl.bernoulli_nll(Affine(h3, 3, name="d"), target=x))
        m.cost("r2", ppl.bernoulli_nll(Affine(h2, 3, name="d2"), target=x))
    return m


def _unbiased(build, est, rows, label):
    m = build()
    prog = m.compile(dtype=np.float64, estimators=est, seed=1)
    assert prog.rows_per_data_row == rows
    P = exact.model_params(prog)
    names = list(P)
    e = stats.flat(exact.gradient(m, P, {"x": X}), names)
    r, tile = stats.assert_unbiased_tuned(prog, {"x": X}, names, e, label)
    assert r.detectable < 0.05
    return prog


def test_rebar_siblings_share_rows_and_are_unbiased():
    """Fixed REBAR on two nodes side by side: 1 + 2 + 2 rows (the product took 9)."""
    _unbiased(siblings, {"h1": ("rebar", {"train": False}), "h2": ("rebar", {"train": False})}, 5,
              "rebar | rebar (siblings)")


def test_rebar_chain_over_disarm_is_unbiased():
    """Trained REBAR -> fixed REBAR -> DisARM: the shared digit has 1 + 4 + 2 + 1 rows, the
    antithetic partner joining it (the product took 5 x 3 x 2 = 30)."""
    prog = _unbiased(chain, {"h1": ("rebar", {"train": True}), "h2": ("rebar", {"train": False}), "h3": "disarm"}, 8,
                     "rebar -> rebar(fixed) -> disarm")
    # eta and the temperature of the trained node get a variance gradient; the fixed node has none
    _, g = prog.grad({"x": X}, seed=0)
    assert np.all(g["rebar.h1.eta"] != 0) and np.all(g["rebar.h1.log_temperature"] != 0)
    assert not np.any(g["rebar.h2.eta"]) and not np.any(g["rebar.h2.log_temperature"])
