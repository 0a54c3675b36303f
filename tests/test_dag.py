"""The graph the compiler analyses (ppl/analysis/graph.py's `Dag`): reachability, the order of
the nodes and cycles, against brute force on random graphs (oracle: the transitive closure by
repeated squaring of the adjacency matrix; every order of a small graph for the topological
order's rule)."""
import itertools
import random

import numpy as np
import pytest

import ppl
from ppl import Affine, Bernoulli, Model, ModelError
from ppl.analysis.graph import Dag, ancestors, descendants, find_cycle, topological_order


def _random(rng, acyclic):
    n = rng.randint(1, 9)
    edges = [(rng.randrange(n), rng.randrange(n)) for _ in range(rng.randint(0, 20))]
    edges = [(a, b) for a, b in edges if a != b and (a < b or not acyclic)]
    g = Dag()
    for v in rng.sample(range(n), n):   # nodes in a random order of insertion
        g.add_node(v)
    for a, b in edges:
        g.add_edge(a, b)
    A = np.zeros((n, n), bool)
    for a, b in edges:
        A[a, b] = True
    return g, n, A


def _closure(A):
    R = A.copy()
    for _ in range(len(A)):
        R = R | (R.astype(int) @ R.astype(int) > 0)
    return R


@pytest.mark.parametrize("seed", range(4))
def test_reach_order_and_cycles_against_brute_force(seed):
    rng = random.Random(seed)
    for _ in range(150):
        g, n, A = _random(rng, acyclic=rng.random() < 0.6)
        R = _closure(A)
        for v in range(n):
            assert descendants(g, v) == {w for w in range(n) if R[v, w] and w != v}
            assert ancestors(g, v) == {u for u in range(n) if R[u, v] and u != v}
        cyclic = bool(np.diag(R).any())
        cycle = find_cycle(g)
        assert (cycle is not None) == cyclic
        if cyclic:
            assert cycle[0] == cycle[-1] and len(set(cycle[:-1])) == len(cycle) - 1
            assert all(A[a, b] for a, b in zip(cycle, cycle[1:]))
            with pytest.raises(ValueError, match="cycle"):
                topological_order(g, key=lambda v: v)
            continue
        key = dict(zip(range(n), rng.sample(range(100), n)))
        order = topological_order(g, key=key.__getitem__)
        valid = [p for p in itertools.permutations(range(n)) if all(
            p.index(a) < p.index(b) for a in range(n) for b in range(n) if A[a, b])] if n <= 7 else None
        assert sorted(order) == list(range(n))
        assert all(order.index(a) < order.index(b) for a in range(n) for b in range(n) if A[a, b])
        if valid is not None:   # the rule: the smallest key among the ready nodes first = the least
            # valid order compared by keys position by position
            assert [key[v] for v in order] == min([key[v] for v in p] for p in valid)


def test_a_cycle_is_a_clear_error():
    with Model("loop") as m:
        x = m.input("x", 2)
        h = Bernoulli("h", logits=Affine(x, 2, name="enc"))
        m.cost("lp", ppl.log_prob(h))
    m.nodes["enc"].inputs = [m.nodes["h"]]   # a graph the DSL cannot build: enc reads h, h reads enc
    with pytest.raises(ModelError, match=r"model 'loop' has a cycle: (enc -> h|h -> enc)"):
        m.compile()
