"""Small graphs the estimator tests share, small enough for tests/exact.py to enumerate."""
import numpy as np

import ppl
from ppl import Affine, Bernoulli, Model

X = np.array([[1., 0., 1.], [0., 1., 1.]])
DATA = {"x": X}


def two_layer_sbn(name):
    """x -> h1 (2 Bernoulli units) -> h2 (2) -> Bernoulli likelihood of x, with log q of both layers."""
    with Model(name) as m:
        x = m.input("x", 3)
        h1 = Bernoulli("h1", logits=Affine(x, 2, name="a1"))
        h2 = Bernoulli("h2", logits=Affine(h1, 2, name="a2"))
        m.cost("lp1", ppl.log_prob(h1))
        m.cost("lp2", ppl.log_prob(h2))
        m.cost("nll", ppl.bernoulli_nll(Affine(h2, 3, name="dec"), target=x))
    return m
