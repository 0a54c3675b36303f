"""A program's small API: choices by name, a flat vector named by unflatten, and sample's one
draw per data row under estimators that evaluate several configurations per sample."""
import numpy as np
import pytest
from scipy import stats

import ppl
from ppl.models import toy_bernoulli


def test_choices_by_name_and_by_node():
    prog = toy_bernoulli.build().compile(estimators={"b": "disarm"})
    node = prog.model.nodes["b"]
    assert prog.choices["b"] is prog.choices[node] and prog.choices["b"][0].estimator == "disarm"
    assert "b" in prog.choices and node in prog.choices and "theta" not in prog.choices
    assert prog.choices.get("nope") is None
    with pytest.raises(KeyError, match="no stochastic node 'theta'; the nodes with an estimator: b"):
        prog.choices["theta"]


def test_unflatten_names_the_raw_steps_gradient():
    with ppl.Model("two_params") as m:
        x = m.input("x", 3)
        h = ppl.Bernoulli("h", logits=ppl.Affine(x, 2, name="enc"))
        m.cost("c", ppl.total(h * ppl.param("w", 2, init=0.5)))
    prog = m.compile(dtype=np.float64)
    data = {"x": np.random.default_rng(0).normal(size=(5, 3))}
    loss, g = prog.grad(data, seed=3)
    prog.entry(*prog.args(data), np.uint64(3), np.int64(0), 1)   # the raw step: the flat gradient
    named = prog.unflatten(prog.grad_buffer)
    assert set(named) == set(g) == {"enc.W", "enc.b", "w"}
    for k in g:
        np.testing.assert_array_equal(named[k], g[k])
    named["w"][...] = 7.0                                        # views of the vector
    assert np.all(prog.unflatten(prog.grad_buffer)["w"] == 7.0)
    with pytest.raises(ppl.ModelError, match=r"unflatten: the vector has shape \(3,\)"):
        prog.unflatten(np.zeros(3))


@pytest.mark.parametrize("est", ["enumerate", "disarm"])
def test_sample_draws_one_configuration_per_data_row(est):
    """Under enumeration (2 configurations) and DisARM (a pair) sample gives one draw per data
    row: the frequency of h = 1 matches sigmoid(logit) within 4 binomial SEs (a 5% shift of p
    fails); configurations=True gives every row the step evaluates."""
    with ppl.Model("enum_sample") as m:
        x = m.input("x", 1)
        h = ppl.Bernoulli("h", logits=ppl.Affine(x, 1, name="enc"))
        m.cost("c", ppl.total(h))
    prog = m.compile(estimators={"h": est}, dtype=np.float64)
    prog.params["enc.W"][...] = 0.0
    prog.params["enc.b"][...] = 0.4
    n = 40_000
    draws = prog.sample({"x": np.zeros((n, 1))}, seed=1, nodes=["h"])["h"][:, 0]
    assert draws.shape == (n,)
    p = 1 / (1 + np.exp(-0.4))
    se = np.sqrt(p * (1 - p) / n)
    assert abs(draws.mean() - p) < 4 * se and abs(draws.mean() - 1.05 * p) > 4 * se
    every = prog.sample({"x": np.zeros((3, 1))}, seed=1, nodes=["h"], configurations=True)["h"]
    assert every.shape == (3 * prog.rows_per_data_row, 1) and prog.rows_per_data_row == 2
    if est == "enumerate":
        np.testing.assert_array_equal(every[:, 0], [0, 1] * 3)
