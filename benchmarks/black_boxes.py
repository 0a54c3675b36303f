"""Models whose one stochastic node sits behind a gradient-free black box (ppl.blackbox), where the
rule table takes stochastic derivatives: 5 Bernoulli units scored by a weighted count (32 values:
enumeration is exact there), or a Poisson count scored by a step function. The measured choice's
benchmark (selection.py) and its tests (tests/compiler/test_autotune.py) build them here."""
import numba
import numpy as np

import ppl
from ppl import Affine, Bernoulli, Model


@numba.njit
def weighted(b):
    """(sum_j (j + 1) b_j - 7)^2 of a row of Bernoulli units."""
    s = 0.0
    for j in range(b.shape[0]):
        s += b[j] * (j + 1)
    return (s - 7.0) ** 2


@numba.njit
def steps(k):
    """|k - 3| + floor(k / 2) of a count."""
    return abs(k[0] - 3.0) + np.floor(k[0] / 2.0)


def model(name: str, law: str = "bernoulli") -> Model:
    """x (2 columns) -> the node ("b": 5 Bernoulli units; "k": a Poisson count) -> the black box."""
    with Model(name) as m:
        x = m.input("x", 2)
        if law == "bernoulli":
            m.cost("f", ppl.blackbox(weighted, [Bernoulli("b", logits=Affine(x, 5, name="pb"))]))
        else:
            m.cost("f", ppl.blackbox(steps, [ppl.Poisson("k", rate=ppl.exp(Affine(x, 1, name="r")))]))
    return m
