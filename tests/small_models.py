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


def walk(name, width, T):
    """A scan of T steps from a start Affine(x) of x's `width` columns: each step draws a Bernoulli
    move (logits w s + b) from the carried position s and pays s^2 / 2; the end pays the last
    position squared and 0.3 times the moves made (a simulation as rows)."""
    with Model(name) as m:
        x = m.input("x", width)
        s0 = Affine(x, 1, name="start")
        w, b = ppl.param("w", 1, -0.4), ppl.param("b", 1, 0.3)

        def body(s, _):
            up = Bernoulli("up", logits=w * s + b)
            m.cost("step", ppl.total(0.5 * (s * s)))
            return s + 2.0 * up - 1.0, up

        last, ups = ppl.scan(body, s0, length=T)
        m.cost("end", ppl.total(last * last + 0.3 * ppl.rowsum(ups)))
    return m


def last_carry(body, init, T, scanned):
    """The carry after T steps of `body(carry, t) -> (carry, y)`: by ppl.scan (scanned), or the
    same body called T times in Python (the unrolled oracle the scan's tests compare against)."""
    if scanned:
        return ppl.scan(body, init, length=T)[0]
    for _step in range(T):
        init, _ = body(init, None)
    return init
