"""Stochastic derivatives with pruning (estimators/stochastic_derivative.py): one alternative row
per drawn row, whatever the nodes, widths and steps, unbiased alone, stacked with other
estimators and inside a scan.

Oracle: tests/exact.py (Bernoulli, categorical and Poisson nodes enumerated, Normal nodes by
Gauss-Hermite, central differences), float64. Statistic: tests/stats.py's projection ratio of the
mean estimate on the exact gradient with its standard error, and the per-entry z;
`stats.assert_unbiased_tuned` sizes the draws for a ratio SE of about 0.8% and requires the same
estimates scaled by 1.05 and 0.95 to fail, so each case detects a 5% bias. The test of the test
(a variant without the pruning's weight W) is rejected by the same check.
"""
import numpy as np
import pytest

import ppl
from ppl import Affine, Bernoulli, Categorical, Model, Normal, Poisson

import exact
import stats
from test_branch_rows import walk, X

SD = "stochastic_derivative"


def _check(m, est, rows, label, data=None, samples=1):
    data = {"x": X} if data is None else data
    prog = m.compile(dtype=np.float64, estimators=est, seed=2, samples=samples)
    assert prog.rows_per_data_row == rows, (prog.rows_per_data_row, rows)
    P = exact.model_params(prog)
    rng = np.random.default_rng(5)
    for k in P:
        P[k] = P[k] + 0.4 * rng.normal(size=np.shape(P[k]))
        prog.params[k][...] = P[k]
    names = list(P)
    e = stats.flat(exact.gradient(m, P, data), names)
    r, _ = stats.assert_unbiased_tuned(prog, data, names, e, label)
    assert r.detectable < 0.05
    return prog


def test_a_walk_of_eight_nodes_takes_one_alternative_row():
    _check(walk("sd_walk8", 8), SD, 2, "walk of 8, stochastic derivatives at every node")


def test_two_samples_per_data_row():
    _check(walk("sd_walk4_k2", 4), SD, 4, "walk of 4, K = 2", samples=2)


def mixed(name):
    """SD Bernoulli (3 units) -> DisARM Bernoulli -> SD categorical -> pathwise Normal, and an
    SD Poisson from x: the alternative row crosses the other estimators' nodes."""
    with Model(name) as m:
        x = m.input("x", 1)
        h1 = Bernoulli("h1", logits=Affine(x, 3, name="e1"))
        h2 = Bernoulli("h2", logits=Affine(h1, 1, name="e2"))
        c = Categorical("c", logits=Affine(h2, 3, name="e3"), classes=3)
        z = Normal("z", Affine(c, 1, name="e4"), 0.7)
        k = Poisson("k", ppl.softplus(Affine(x, 1, name="e5")))
        m.cost("lp", ppl.log_prob(c))
        m.cost("zz", ppl.total((z - 1.0) * (z - 1.0) + 0.2 * k * z))
        m.cost("hk", ppl.total(0.3 * ppl.rowsum(h1) * k))
    return m


def test_stacked_with_disarm_and_pathwise_and_on_every_discrete_law():
    est = {"h1": SD, "h2": "disarm", "c": SD, "z": "pathwise", "k": SD}
    _check(mixed("sd_mixed"), est, 3, "SD Bernoulli / categorical / Poisson with DisARM and pathwise")


def test_without_the_reservoir_weight_is_caught():
    """The test of the test: the kept jump's estimate without W_total (f(y) - f(x) alone) is
    biased, and the same check rejects it."""
    from ppl.estimators import REGISTRY
    from ppl.estimators.stochastic_derivative import StochasticDerivative
    from ppl.kernels.cpu.core import sd_grad

    class NoWeight(StochasticDerivative):
        name = "sd_no_weight"

        def estimate(self, ctx):
            (g,) = ctx.param_grads()
            alt = ctx.rows.alternative
            stride, _, span = alt.slot
            ones = ctx.buffer("ones", alt.paths)
            ctx.emit(f"rows.fill({ones}, 1.0)")
            ctx.call(sd_grad, ctx.buffer("tag", alt.paths * ctx.node.width), stride, span, ones, alt.count, alt.D,
                     ctx.rows.weights, g)

    before = dict(REGISTRY)
    try:
        REGISTRY[NoWeight.name] = NoWeight()
        m = walk("sd_no_weight", 4)
        prog = m.compile(dtype=np.float64, estimators="sd_no_weight", seed=2)
        P = exact.model_params(prog)
        names = list(P)
        e = stats.flat(exact.gradient(m, P, {"x": X}), names)
        r = stats.check(stats.draws(prog, {"x": X}, names, 200, 100), e)
        print("without W:", r)
        assert not r.ok, r
    finally:
        REGISTRY.clear()
        REGISTRY.update(before)


def test_above_an_enumerated_node_is_refused():
    with pytest.raises(ppl.ModelError, match=r"'up0': estimator 'stochastic_derivative' cannot sit above 'up1' "
                                             r"\(estimator 'enumerate'"):
        walk("sd_enum", 2).compile(estimators={"up0": SD, "up1": "enumerate"})


def counts(name, by_logits=False):
    """Bernoulli(probs) -> Binomial(3, probs) -> Geometric(logits), and a Categorical given by
    weights (by_logits: the Binomial by logits, the Geometric by probs): every law by
    probabilities or counts the estimator serves."""
    with Model(name) as m:
        x = m.input("x", 1)
        b = Bernoulli("b", probs=ppl.sigmoid(Affine(x, 1, name="e1")))
        a2, a3 = Affine(b, 1, name="e2"), None
        k = ppl.Binomial("k", 3.0, **({"logits": a2} if by_logits else {"probs": ppl.sigmoid(a2)}))
        a3 = Affine(k, 1, name="e3") + 1.0
        g = ppl.Geometric("g", **({"probs": ppl.sigmoid(a3)} if by_logits else {"logits": a3}))
        c = Categorical("c", probs=ppl.softplus(Affine(x, 3, name="e4")), classes=3)
        m.cost("f", ppl.total(0.2 * (k - 1.0) * (g - 1.0) + 0.3 * g * b + Affine(c, 1, name="d") * k))
    return m


@pytest.mark.parametrize("by_logits", [False, True])
def test_the_laws_given_by_probabilities_and_the_counts(by_logits):
    _check(counts(f"sd_counts_{by_logits}", by_logits), SD, 2,
           f"SD on Bernoulli(probs), Binomial, Geometric, Categorical(probs), by_logits={by_logits}")
