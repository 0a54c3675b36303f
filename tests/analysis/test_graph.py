"""The model's graph, a networkx.DiGraph (ppl/analysis/graph.py; `Program.graph`): its node
attributes, reachability, the order of the nodes and cycles. The analysis' functions against brute
force on random graphs (oracle: the transitive closure by repeated squaring of the adjacency
matrix; every order of a small graph for the topological order's rule); the program's graph
against the model it was declared as."""
import itertools
import os
import random
import subprocess
import sys

import networkx as nx
import numpy as np
import pytest

import ppl
from ppl import Affine, Bernoulli, Model, ModelError, dist
from ppl.analysis import graph as G
from ppl.distributions import DISTRIBUTIONS


def _random(rng, acyclic):
    n = rng.randint(1, 9)
    edges = [(rng.randrange(n), rng.randrange(n)) for _ in range(rng.randint(0, 20))]
    edges = [(a, b) for a, b in edges if a != b and (a < b or not acyclic)]
    g = nx.DiGraph()
    g.add_nodes_from(rng.sample(range(n), n))   # nodes in a random order of insertion
    g.add_edges_from(edges)
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
        frozen = nx.freeze(g.copy())   # the analysis' graphs are frozen: their reach is remembered
        for v in range(n):
            for h in (g, frozen, frozen):   # twice: computed, then remembered
                assert G.descendants(h, v) == {w for w in range(n) if R[v, w] and w != v}
                assert G.ancestors(h, v) == {u for u in range(n) if R[u, v] and u != v}
        cyclic = bool(np.diag(R).any())
        cycle = G.find_cycle(g)
        assert (cycle is not None) == cyclic
        if cyclic:
            assert cycle[0] == cycle[-1] and len(set(cycle[:-1])) == len(cycle) - 1
            assert all(A[a, b] for a, b in zip(cycle, cycle[1:]))
            with pytest.raises(nx.NetworkXUnfeasible, match="cycle"):
                G.topological_order(g, key=lambda v: v)
            continue
        key = dict(zip(range(n), rng.sample(range(100), n)))
        order = G.topological_order(g, key=key.__getitem__)
        valid = [p for p in itertools.permutations(range(n)) if all(
            p.index(a) < p.index(b) for a in range(n) for b in range(n) if A[a, b])] if n <= 7 else None
        assert sorted(order) == list(range(n))
        assert all(order.index(a) < order.index(b) for a in range(n) for b in range(n) if A[a, b])
        if valid is not None:   # the rule: the smallest key among the ready nodes first = the least
            # valid order compared by keys position by position
            assert [key[v] for v in order] == min([key[v] for v in p] for p in valid)


def test_equal_keys_go_in_the_order_the_nodes_were_added():
    g = nx.DiGraph()
    g.add_nodes_from(["c", "a", "d", "b"])
    g.add_edge("c", "b")
    assert G.topological_order(g, key=lambda v: 0) == ["c", "a", "d", "b"]
    assert G.topological_order(g, key=lambda v: v) == ["a", "c", "b", "d"]


def test_a_cycle_is_a_clear_error():
    with Model("loop") as m:
        x = m.input("x", 2)
        h = Bernoulli("h", logits=Affine(x, 2, name="enc"))
        m.cost("lp", ppl.log_prob(h))
    m.nodes["enc"].inputs = [m.nodes["h"]]   # a graph the DSL cannot build: enc reads h, h reads enc
    with pytest.raises(ModelError, match=r"model 'loop' has a cycle: (enc -> h|h -> enc)$"):
        m.compile()


def _plated():
    """A global Normal w and a per-row Bernoulli h below it, in a plate."""
    with Model("plated") as m:
        x = m.input("x", 3)
        w = ppl.Normal("w", ppl.param("wl", 2), ppl.softplus(ppl.param("ws", 2)))
        m.latent(w, dist.Normal(0.0, 1.0))
        with m.plate("data", size=50):
            h = Bernoulli("h", logits=Affine(ppl.concat([x, w]), 4, name="enc"))
            m.latent(h, dist.Bernoulli(logits=ppl.param("prior", 4)))
            m.observe("recon", dist.Bernoulli(logits=Affine(h, 3, name="dec")), x)
    return m


def test_the_programs_graph_has_the_models_nodes_edges_and_choices():
    m = _plated()
    prog = m.compile(estimators={"w": "pathwise", "h": "score"})
    g = prog.graph
    assert isinstance(g, nx.DiGraph) and not nx.is_frozen(g)
    assert list(g) == [n.name for n in m.order]
    assert set(g.edges) == {(i.name, n.name) for n in m.order for i in n.inputs}
    for n in m.order:
        a = g.nodes[n.name]
        assert a["node"] is n and a["kind"] == n.kind and a["width"] == n.width and a["is_cost"] == n.is_cost
        assert a["law"] == (DISTRIBUTIONS[n.kind].name if n.is_stochastic else None)
        assert (a["estimator"] is None) == (not n.is_stochastic)
    assert {k: g.nodes["w"][k] for k in ("kind", "law", "width", "estimator", "plate")} == dict(
        kind="normal", law="Normal", width=2, estimator="pathwise", plate=None)
    assert {k: g.nodes["h"][k] for k in ("kind", "law", "width", "estimator", "plate")} == dict(
        kind="bernoulli", law="Bernoulli", width=4, estimator="score", plate="data")
    assert {k: g.nodes["enc"][k] for k in ("kind", "law", "estimator", "plate", "is_cost")} == dict(
        kind="affine", law=None, estimator=None, plate=None, is_cost=False)
    costs = {g.nodes[v]["node"].attrs["cost_name"] for v in g if g.nodes[v]["is_cost"]}
    assert costs == {"logq_w", "logp_w", "logq_h", "logp_h", "recon"}

    # reachability: the costs below h are its own terms and the likelihood, not w's
    below = {g.nodes[v]["node"].attrs["cost_name"] for v in nx.descendants(g, "h") if g.nodes[v]["is_cost"]}
    assert below == {"logq_h", "logp_h", "recon"}
    assert {"x", "w", "wl", "ws", "enc"} <= nx.ancestors(g, "h") and "prior" not in nx.ancestors(g, "h")
    assert nx.ancestors(g, "w") == {"wl", "ws", "softplus_1"}   # the guide's parameters, softplus(ws)
    assert [c.name for c in prog.analysis.downstream_costs[m.nodes["h"]]] == [
        v for v in g if g.nodes[v]["is_cost"] and v in nx.descendants(g, "h")]

    # the analysis' order: a topological order of the graph, the declaration's among ready nodes
    order = [n.name for n in prog.analysis.order]
    position = {v: i for i, v in enumerate(g)}
    assert order == list(nx.lexicographical_topological_sort(g, key=position.__getitem__))
    assert all(order.index(a) < order.index(b) for a, b in g.edges)

    # a new graph at each access; the analysis' own is frozen
    g.remove_node("h")
    assert "h" in prog.graph and nx.is_frozen(prog.analysis.graph)
    with pytest.raises(nx.NetworkXError, match="[Ff]rozen"):
        prog.analysis.graph.add_edge("x", "w")


def test_networkx_is_imported_with_the_first_graph_not_with_ppl():
    code = ("import sys, ppl, ppl.cli\n"
            "print('networkx' in sys.modules)\n"
            "from ppl.models import sbn\n"
            "from ppl.analysis import graph\n"
            "g = graph.build(sbn.build())\n"
            "print('networkx' in sys.modules, type(g).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ}, check=True).stdout.split("\n")
    assert out[:2] == ["False", "True DiGraph"], out
