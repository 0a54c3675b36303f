"""Layers computed once per class of equal rows (ppl.lowering.rows: plan_rows).

Where configuration rows repeat an upstream value (two REBAR layers: the upper draw is the same on
the drawn row and on the lower node's control-variate rows; two DisARM layers: the upper draw is
the same in both lower configurations), the layers and costs reading it are computed once per
class, their values copied to the readers' rows and their cotangents summed back.

Oracle: the same program with every node computed on every row (`ArrayLowering.merge_rows = False`),
the layout before the merge. Both draw the same noise, so the loss and every gradient entry must
agree to rounding (the merged program sums a class's cotangents before the product, not after);
a merge of rows whose values differ changes them by far more. Each case also checks that the
merge happened (a layout with fewer rows than the program's), so the comparison is not vacuous.
"""
import numpy as np
import pytest

import ppl
from ppl import Affine, Bernoulli, Model, Normal
from ppl.analysis import graph as G
from ppl.lowering import rows as row_plan
from ppl.lowering import ArrayLowering
from ppl.models import sbn

X = (np.random.default_rng(0).random((5, 12)) < 0.4).astype(float)


def two_layer():
    return sbn.build(latent=(8, 4), pixels=12)


def three_layer():
    """x -> h1 -> h2 -> h3, each layer's draw decoded back to x."""
    with Model("row_classes_chain") as m:
        x = m.input("x", 12)
        h1 = Bernoulli("h1", logits=Affine(x, 6, name="e1"))
        h2 = Bernoulli("h2", logits=Affine(h1, 5, name="e2"))
        h3 = Bernoulli("h3", logits=Affine(h2, 4, name="e3"))
        for j, h in enumerate((h1, h2, h3)):
            m.cost(f"lp{j}", ppl.log_prob(h))
            m.cost(f"rec{j}", ppl.bernoulli_nll(Affine(h, 12, name=f"d{j}"), target=x))
    return m


def gaussian_below():
    """A DisARM node above a reparameterised Normal and a Bernoulli below both."""
    with Model("row_classes_gauss") as m:
        x = m.input("x", 12)
        h = Bernoulli("h", logits=Affine(x, 6, name="e1"))
        z = Normal("z", loc=Affine(h, 4, name="mu"), scale=ppl.softplus(Affine(h, 4, name="sd")))
        b = Bernoulli("b", logits=Affine(z, 3, name="e3"))
        m.cost("lp", ppl.log_prob(h))
        m.cost("lpb", ppl.log_prob(b))
        m.cost("rec", ppl.bernoulli_nll(Affine(ppl.concat([h, b]), 12, name="d"), target=x))
        m.cost("rz", ppl.gaussian_nll(Affine(h, 4, name="pz"), ppl.softplus(Affine(h, 4, name="ps")), target=z))
    return m


FIXED = ("rebar", {"train": False})
CASES = {
    "rebar/rebar fixed": (two_layer, FIXED, 1),
    "rebar/rebar trained": (two_layer, "rebar", 1),
    "disarm/disarm": (two_layer, "disarm", 1),
    "disarm/disarm K=2": (two_layer, "disarm", 2),
    "rebar/disarm": (two_layer, {"h1": FIXED, "h2": "disarm"}, 1),
    "straight-through/disarm": (two_layer, {"h1": "straight_through", "h2": "disarm"}, 1),
    "disarm/rebar/disarm": (three_layer, {"h1": "disarm", "h2": FIXED, "h3": "disarm"}, 1),
    "rebar/score/rebar": (three_layer, {"h1": FIXED, "h2": "score", "h3": "rebar"}, 1),
    "disarm/pathwise/disarm": (gaussian_below, {"h": "disarm", "z": "pathwise", "b": "disarm"}, 1),
}


def _compile(build, est, samples, merge, monkeypatch):
    monkeypatch.setattr(ArrayLowering, "merge_rows", merge)
    return build().compile(dtype=np.float64, estimators=est, samples=samples, seed=3, lowering="arrays")


@pytest.mark.parametrize("case", [c for c in CASES if c != "disarm/disarm"])   # K = 2 and the test of the test cover it
def test_merged_rows_give_the_unmerged_gradient(case, monkeypatch):
    build, est, samples = CASES[case]
    merged = _compile(build, est, samples, True, monkeypatch)
    plain = _compile(build, est, samples, False, monkeypatch)
    per = merged.rows_per_data_row
    g = merged.analysis.graph
    below = {n for n in g if any(merged.model.nodes[a].is_stochastic for a in G.ancestors(g, n))}
    fewer = [n for n, (_, _, rows) in merged.layout.values.items() if n in below and max(rows) + 1 < per]
    assert fewer, f"{case}: no layer below a draw is computed on fewer than {per} rows per data row"
    assert all(max(rows) + 1 == per for n, (_, _, rows) in plain.layout.values.items() if n in below)
    for seed in range(3):
        lm, gm = merged.grad({"x": X}, seed=seed, step=seed)
        lp, gp = plain.grad({"x": X}, seed=seed, step=seed)
        assert lm == pytest.approx(lp, rel=1e-12, abs=1e-12)
        for k in gp:
            np.testing.assert_allclose(gm[k], gp[k], rtol=1e-9, atol=1e-11, err_msg=f"{case}: {k}")
        sm, sp = merged.sample({"x": X}, seed=seed), plain.sample({"x": X}, seed=seed)
        for k in sp:   # hard draws bit for bit; other values to the products' rounding (a BLAS product of
            # B rows and one of K B rows may round an entry differently: one ulp seen on some CPUs)
            if np.all((sp[k] == 0) | (sp[k] == 1)):   # hard draws
                np.testing.assert_array_equal(sm[k], sp[k], err_msg=f"{case}: sample of {k}")
            else:   # layers and relaxed draws
                np.testing.assert_allclose(sm[k], sp[k], rtol=1e-12, atol=1e-14, err_msg=f"{case}: value of {k}")


def test_a_wrong_merge_is_seen(monkeypatch):
    """The test of the test: merging rows whose values differ (each DisARM node's draw taken as
    equal in both configurations of its pair) changes the gradient far beyond the tolerance."""
    build, est, samples = CASES["disarm/disarm"]
    plain = _compile(build, est, samples, False, monkeypatch)
    real = row_plan._canon

    def blind(keys):   # a stochastic node's key (k, its digit, its inputs' classes) without the digit
        return real([(k[0], 0, k[2]) if isinstance(k, tuple) and len(k) == 3 and isinstance(k[2], tuple) else k
                     for k in keys])

    monkeypatch.setattr(row_plan, "_canon", blind)
    bad = _compile(build, est, samples, True, monkeypatch)
    _, gp = plain.grad({"x": X}, seed=0)
    _, gb = bad.grad({"x": X}, seed=0)
    assert any(not np.allclose(gb[k], gp[k], rtol=1e-9, atol=1e-11) for k in gp)
