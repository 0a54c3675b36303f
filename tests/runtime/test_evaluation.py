"""Held-out evaluation reports the model's objective with hard samples, never a relaxation's
surrogate: a program with concrete / gumbel_softmax nodes is evaluated by its hard twin.

Oracle: tests/exact.py (the categorical and Bernoulli nodes enumerated); the twin's mean loss
over 4,000 draws of each data row must lie within 4 standard errors of the exact objective,
and the relaxed surrogate's own mean must not (it is off by far more, at temperature 0.5).
"""
import numpy as np
import pytest

import ppl
from ppl import Affine, Bernoulli, Categorical, Model
from ppl.training.fit import EVAL_SEED, heldout_loss

import exact

X = np.array([[1., 0., 1.], [0., 1., 1.]])


def build(name):
    with Model(name) as m:
        x = m.input("x", 3)
        c = Categorical("c", logits=Affine(x, 3, name="qc"), classes=3)
        b = Bernoulli("b", logits=Affine(x, 2, name="qb"))
        m.cost("lqc", ppl.log_prob(c))
        m.cost("lqb", ppl.log_prob(b))
        m.cost("nll", ppl.bernoulli_nll(Affine(c, 3, name="dc") + Affine(b, 3, name="db"), target=x))
    return m


def test_a_relaxed_program_is_evaluated_with_hard_samples():
    m = build("ev_relaxed")
    prog = m.compile(dtype=np.float64, estimators={"c": "gumbel_softmax", "b": "concrete"})
    assert sorted(prog.relaxed_nodes()) == ["b", "c"]
    prog.theta[:] = np.random.default_rng(0).normal(0.0, 0.8, prog.theta.shape)
    P = exact.model_params(prog)
    F = exact.objective(m, P, {"x": X})
    data = {"x": np.tile(X, (2000, 1))}
    twin = prog.hard_twin()
    assert twin is prog.hard_twin() and twin.relaxed_nodes() == []
    assert {n.name: ch.estimator for n, (ch, _) in twin.choices.items()} == {"c": "score", "b": "score"}
    hard = np.array([twin.loss(data, seed=s) for s in range(20)])
    relaxed = np.array([prog.loss(data, seed=s) for s in range(20)])
    se = lambda a: a.std(ddof=1) / np.sqrt(len(a))   # noqa: E731
    assert abs(hard.mean() - F) <= 4 * se(hard), (hard.mean(), F)
    assert abs(relaxed.mean() - F) > 20 * se(relaxed), (relaxed.mean(), F)
    assert heldout_loss(prog, data, draws=3) == pytest.approx(float(np.mean(
        [twin.loss(data, seed=EVAL_SEED, step=k) for k in range(3)])), rel=1e-12)
    prog.params["qc.b"][...] += 1.0          # the twin follows the program's parameters
    assert heldout_loss(prog, data, draws=1) == pytest.approx(twin.loss(data, seed=EVAL_SEED, step=0))
    assert np.array_equal(twin.params["qc.b"], prog.params["qc.b"])


def test_an_unrelaxed_program_is_its_own_twin():
    prog = build("ev_plain").compile(dtype=np.float64, estimators="score")
    assert prog.relaxed_nodes() == [] and prog.hard_twin() is prog
