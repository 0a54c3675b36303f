"""The stochastic computation graph: validation and the analyses the compiler needs.

Edges run from a node to the nodes that read it (`Dag`: names, their nodes, each node's readers
in the order they were added; `ancestors`, `descendants`, `topological_order`, `find_cycle`).
For every stochastic node the compiler needs its downstream costs (only those enter its
score-function learning signal: Rao-Blackwellisation as in Pyro's TraceGraph_ELBO) and whether
every path from it to the next stochastic nodes or costs is differentiable (a black box without
a gradient breaks a path).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from . import loops as L
from ..language.declare import check as check_declaration
from ..errors import ModelError
from ..language.nodes import Graph, Node
from ..ops import HEAD_KINDS, LAYER_KINDS


class Dag:
    """A directed graph of node names: `nodes[name]["node"]` the node, `successors(name)` the
    names that read it in the order their edges were added; iterating gives the names."""

    def __init__(self):
        self.nodes, self._succ, self._pred = {}, {}, {}

    def add_node(self, name, node=None):
        if name not in self.nodes:
            self.nodes[name], self._succ[name], self._pred[name] = {}, {}, {}
        if node is not None:
            self.nodes[name]["node"] = node

    def add_edge(self, a, b):
        self.add_node(a)
        self.add_node(b)
        self._succ[a][b] = None
        self._pred[b][a] = None

    def successors(self, name):
        return iter(self._succ[name])

    def __iter__(self):
        return iter(self.nodes)


def _reach(adjacency, start) -> set:
    seen, stack = set(), [start]
    while stack:
        for nxt in adjacency[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    seen.discard(start)
    return seen


def descendants(g: Dag, name) -> set:
    """The names reachable from `name` (not itself)."""
    return _reach(g._succ, name)


def ancestors(g: Dag, name) -> set:
    """The names from which `name` is reachable (not itself)."""
    return _reach(g._pred, name)


def _kahn(g: Dag, key) -> tuple:
    """(the names in topological order, {name: its readings not yet met} of the names left):
    Kahn's algorithm taking, among the ready names, the smallest (key(name), insertion index)
    first. The names left are those on or after a cycle."""
    index = {v: i for i, v in enumerate(g.nodes)}
    waiting = {v: len(g._pred[v]) for v in g.nodes if g._pred[v]}
    ready = [(key(v), i, v) for v, i in index.items() if not g._pred[v]]
    heapq.heapify(ready)
    out = []
    while ready:
        v = heapq.heappop(ready)[2]
        out.append(v)
        for w in g._succ[v]:
            waiting[w] -= 1
            if waiting[w] == 0:
                del waiting[w]
                heapq.heappush(ready, (key(w), index[w], w))
    return out, waiting


def topological_order(g: Dag, key) -> list:
    """Every name, each after those it reads; among the names ready at each point, the one with
    the smallest key(name) first (unique keys make it one order)."""
    out, left = _kahn(g, key)
    if left:
        raise ValueError("the graph has a cycle")
    return out


def find_cycle(g: Dag):
    """The names of a cycle in edge order (its first name repeated at the end), or None. Each
    name Kahn's algorithm leaves reads a name left, so walking back from one of them comes round
    to a name seen."""
    _, left = _kahn(g, key=lambda v: 0)
    if not left:
        return None
    walk, at = {}, next(iter(left))
    while at not in walk:
        walk[at] = len(walk)
        at = next(u for u in g._pred[at] if u in left)
    cycle = list(walk)[walk[at]:][::-1]   # walked against the edges: reversed, each reads the one before
    return cycle + [cycle[0]]


@dataclass
class Analysis:
    graph: Dag
    order: list            # nodes in topological order
    downstream_costs: dict  # stochastic node -> list of cost nodes reachable from it
    blocked_by: dict        # stochastic node -> name of a gradient-free black box on its paths, or None
    ancestors_inputs: dict  # stochastic node -> data input nodes it depends on (for learned baselines)
    global_nodes: frozenset = frozenset()   # stochastic nodes outside every plate (scopes)
    cost_scale: dict = field(default_factory=dict)   # cost head -> its weight N (a per-row cost of a plate)
    loops: tuple = ()       # loops.LoopInfo of each ppl.scan (a body node's downstream costs: its step's)

    def loop_of(self, node):
        """The LoopInfo of the loop whose body holds the node, or None."""
        return L.info_of(self.loops, node)


def build(model: Graph) -> Dag:
    g = Dag()
    for n in model.order:
        g.add_node(n.name, node=n)
        for i in n.inputs:
            g.add_edge(i.name, n.name)
    return g


def validate(model: Graph) -> Dag:
    """Check the model and return its graph; errors name the node, the problem and the fix."""
    if not model.costs:
        raise ModelError(f"model '{model.name}' has no cost: add one with m.cost(name, head)")
    g = build(model)
    cycle = find_cycle(g)
    if cycle is not None:
        raise ModelError(f"model '{model.name}' has a cycle: {' -> '.join(cycle[:-1])}")
    for n in model.order:
        if n.attrs.get("is_head") and not n.is_cost:
            raise ModelError(f"head '{n.name}' ({n.kind}) is not used as a cost: pass it to m.cost(name, ...)")
    check_declaration(model)
    L.check_reads(model)
    cost_names = {c.name for c in model.costs}
    for n in model.order:
        if n.is_stochastic and "loop" not in n.attrs and not (descendants(g, n.name) & cost_names):
            raise ModelError(f"{n.kind} '{n.name}' reaches no cost, so its parameters get no gradient; "
                             f"use it in a cost (e.g. m.cost('lp', ppl.log_prob({n.name}))) or remove it")
        if n.kind in LAYER_KINDS | HEAD_KINDS or n.is_stochastic:
            for i in n.inputs:
                if i.attrs.get("is_head"):
                    raise ModelError(f"'{n.name}' reads the cost head '{i.name}'; costs are terminal")
    return g


def analyse(model: Graph) -> Analysis:
    g = validate(model)
    position = {n.name: i for i, n in enumerate(model.order)}
    order = [g.nodes[k]["node"] for k in topological_order(g, key=position.__getitem__)]
    infos = ()
    if L.loops_of(model):
        order = L.loop_order(order, L.loops_of(model), lambda name: descendants(g, name))
        infos = tuple(L.analyse(model, order, model.costs, lambda name: descendants(g, name)))
        L.check_length(model, sum(n.is_stochastic for n in order))
    down, blocked, anc_inputs = {}, {}, {}
    for n in order:
        if not n.is_stochastic:
            continue
        desc = descendants(g, n.name)
        down[n] = [c for c in model.costs if c.name in desc]
        info = L.info_of(infos, n)
        if info is not None:   # at its own step; the later steps' and those after the loop: `future`
            down[n] = [c for c in down[n] if c in info.body]
            if not down[n] and not (n in info.future and (info.carry_costs or info.post_costs)):
                raise ModelError(f"{n.kind} '{n.name}' (in the body of ppl.scan '{info.loop.name}') reaches no cost, "
                                 f"at its step or through the carry, so its parameters get no gradient; use it in a "
                                 f"cost or in the carry, or remove it")
        blocked[n] = _first_block(g, n, lambda name: L.carry_continues(model, name))
        above = ancestors(g, n.name)
        anc_inputs[n] = [a for a in order if a.kind == "input" and a.name in above]
    return Analysis(g, order, down, blocked, anc_inputs, *scopes(model, order), loops=infos)


def scopes(model: Graph, order: list) -> tuple:
    """(global stochastic nodes, {cost head: N}) of a model with a plate of size N (m.plate), else
    (empty, empty): every node is per data row, as without plates. A node is per row when it is a
    data input, a stochastic node made inside the plate, or reads a per-row node; a stochastic node
    that is not is global (drawn once per step and sample, shared by every row). A cost that reads
    a per-row node is weighted N (the loss is the mean over the batch's rows: N / batch per row);
    a global node's terms weigh 1 (once per data set)."""
    if not getattr(model, "plates", None):
        return frozenset(), {}
    (N,) = model.plates.values()
    local = set()
    for n in order:
        if n.kind == "input" or n.attrs.get("plate") or any(i in local for i in n.inputs):
            local.add(n)
    glob = frozenset(n for n in order if n.is_stochastic and n not in local)
    for lat in getattr(model, "latents", {}).values():
        if lat.node in glob:
            bad = [a for a in lat.prior.args if a in local]
            if bad:
                raise ModelError(f"m.latent('{lat.node.name}', ...): '{lat.node.name}' is global (drawn outside every "
                                 f"plate) but its prior reads the per-row node '{bad[0].name}'; a global prior may "
                                 f"read parameters and global latents only (draw '{lat.node.name}' inside the plate "
                                 f"to make it per row)")
    return glob, {c: float(N) for c in model.costs if c in local}


def _first_block(g: Dag, s: Node, more=lambda name: ()):
    """Name of a gradient-free black box reachable from s before the next stochastic node, or None;
    `more(name)`: where a path goes on from `name` besides its readers (a loop's next step)."""
    stack, seen = [s.name], {s.name}
    while stack:
        at = stack.pop()
        for nxt in (*g.successors(at), *more(at)):
            if nxt in seen:
                continue
            seen.add(nxt)
            node = g.nodes[nxt]["node"]
            if "fn" in node.attrs and node.attrs.get("grad") is None:   # a user function without VJP
                return node.name
            if not node.is_stochastic:  # a stochastic node's own estimator handles what lies beyond it
                stack.append(nxt)
    return None
