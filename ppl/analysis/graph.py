"""The stochastic computation graph: validation and the analyses the compiler needs.

The graph is a frozen `networkx.DiGraph` (`build`): the node names are its nodes, each with its
Node under the attribute "node"; edges run from a node to the nodes that read it, in the order
they were added. `ancestors` and `descendants` are networkx's, remembered per frozen graph (the
validation, the analysis, the estimators' selection and the lowering ask for the same nodes');
`topological_order` is networkx's lexicographical topological sort; `find_cycle` names the nodes
of a cycle. networkx is imported where the first graph is built, not with ppl: it is about a
sixth of `import ppl` (docs/benchmarks/compile-and-cold-start.md, "networkx, imported at the first graph").
For every stochastic node the compiler needs its downstream costs (only those enter its
score-function learning signal: Rao-Blackwellisation as in Pyro's TraceGraph_ELBO) and whether
every path from it to the next stochastic nodes or costs is differentiable (a black box without
a gradient breaks a path).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import loops as L
from ..language.declare import check as check_declaration
from ..errors import ModelError
from ..language.nodes import Graph, Node
from ..language.scan import loop_order
from ..ops import HEAD_KINDS, LAYER_KINDS

if TYPE_CHECKING:
    import networkx as nx

_REACHED = weakref.WeakKeyDictionary()   # frozen graph -> {(name, downwards): frozenset of names}


def _reached(g: nx.DiGraph, name, downwards: bool) -> frozenset:
    import networkx as nx
    if not nx.is_frozen(g):   # a graph that may still change: nothing remembered
        return frozenset((nx.descendants if downwards else nx.ancestors)(g, name))
    memo = _REACHED.get(g)
    if memo is None:
        memo = _REACHED[g] = {}
    key = (name, downwards)
    if key not in memo:
        memo[key] = frozenset((nx.descendants if downwards else nx.ancestors)(g, name))
    return memo[key]


def descendants(g: nx.DiGraph, name) -> frozenset:
    """The names reachable from `name` (not itself): networkx.descendants."""
    return _reached(g, name, True)


def ancestors(g: nx.DiGraph, name) -> frozenset:
    """The names from which `name` is reachable (not itself): networkx.ancestors."""
    return _reached(g, name, False)


def topological_order(g: nx.DiGraph, key) -> list:
    """Every name, each after those it reads: Kahn's algorithm taking, among the names ready at
    each point, the smallest (key(name), insertion index) first
    (networkx.lexicographical_topological_sort). networkx.NetworkXUnfeasible on a cycle."""
    import networkx as nx
    return list(nx.lexicographical_topological_sort(g, key=key))


def find_cycle(g: nx.DiGraph):
    """The names of a cycle in edge order (its first name repeated at the end), or None."""
    import networkx as nx
    if nx.is_directed_acyclic_graph(g):   # the common case, 5x faster than a search that finds nothing
        return None
    edges = nx.find_cycle(g)
    return [a for a, _ in edges] + [edges[0][0]]


@dataclass
class Analysis:
    graph: nx.DiGraph       # frozen (build)
    order: list            # nodes in topological order
    downstream_costs: dict  # stochastic node -> list of cost nodes reachable from it
    blocked_by: dict        # stochastic node -> name of a gradient-free black box on its paths, or None
    ancestors_inputs: dict  # stochastic node -> data input nodes it depends on (for learned baselines)
    global_nodes: frozenset = frozenset()   # stochastic nodes outside every plate (scopes)
    cost_scale: dict = field(default_factory=dict)   # cost head -> its weight N (a per-row cost of a plate)
    group_of: dict = field(default_factory=dict)     # node -> its plate of groups (its value one per group)
    cost_group: dict = field(default_factory=dict)   # cost head -> its plate of groups (a term once per group)
    loops: tuple = ()       # loops.LoopInfo of each ppl.scan (a body node's downstream costs: its step's)

    def loop_of(self, node):
        """The LoopInfo of the loop whose body holds the node, or None."""
        return L.info_of(self.loops, node)


def build(model: Graph) -> nx.DiGraph:
    """The model's graph, frozen: node names, each node's Node under "node", edges to readers."""
    import networkx as nx
    g = nx.DiGraph()
    for n in model.order:
        g.add_node(n.name, node=n)
        g.add_edges_from((i.name, n.name) for i in n.inputs)
    return nx.freeze(g)


def validate(model: Graph) -> nx.DiGraph:
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
    above_costs = set().union(*(ancestors(g, c.name) for c in model.costs))
    for n in model.order:   # a body's node may reach its costs through the carry (checked in analyse)
        if n.is_stochastic and "loop" not in n.attrs and n.name not in above_costs:
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
        order = loop_order(order, L.loops_of(model), lambda name: descendants(g, name))
        infos = tuple(L.analyse(model, order, model.costs, lambda name: descendants(g, name)))
        L.check_length(model, sum(n.is_stochastic for n in order))
    down, blocked, anc_inputs = {}, {}, {}
    inputs = [a for a in order if a.kind == "input"]
    for n in order:
        if not n.is_stochastic:
            continue
        down[n] = [c for c in model.costs if n.name in ancestors(g, c.name)]   # one search per cost
        info = L.info_of(infos, n)
        if info is not None:   # at its own step; the later steps' and those after the loop: `future`
            down[n] = [c for c in down[n] if c in info.body]
            if not down[n] and not (n in info.future and (info.carry_costs or info.post_costs)):
                raise ModelError(f"{n.kind} '{n.name}' (in the body of ppl.scan '{info.loop.name}') reaches no cost, "
                                 f"at its step or through the carry, so its parameters get no gradient; use it in a "
                                 f"cost or in the carry, or remove it")
        blocked[n] = _first_block(g, n, lambda name: L.carry_continues(model, name))
        above = ancestors(g, n.name)
        anc_inputs[n] = [a for a in inputs if a.name in above]
    return Analysis(g, order, down, blocked, anc_inputs, *scopes(model, order), loops=infos)


def scopes(model: Graph, order: list) -> tuple:
    """(global stochastic nodes, {cost head: N}, {node: plate of groups}, {cost head: plate of
    groups}) of a model with a plate of size N (m.plate), else all empty: every node is per data
    row, as without plates. A node is per row when it is a data input, a stochastic node made
    inside the data plate, or reads a per-row node; per group of a plate of groups (m.plate(name,
    size, index=)) when it is that plate's index input, a stochastic node made inside it, or reads
    such a node (and nothing finer); a stochastic node that is neither is global (drawn once per
    step and sample, shared by every row). A cost that reads a per-row node is weighted N (the loss
    is the mean over the batch's rows: N / batch per row); a per-group cost N times 1 / its group's
    rows (`cost_group`: Program's inputs hold that weight per row); a global node's terms weigh 1
    (once per data set)."""
    if not getattr(model, "plates", None):
        return frozenset(), {}, {}, {}
    (N,) = model.plates.values()
    groups = getattr(model, "groups", {})
    index_of = {g.index: name for name, g in groups.items()}
    ROW = "row"

    def chain(P):   # the plate of groups and those it nests in
        out = []
        while P is not None:
            out.append(P)
            P = groups[P].parent
        return out

    def join(a, b):
        if a is None or a == b:
            return b
        if b is None:
            return a
        if ROW in (a, b):
            return ROW
        return b if a in chain(b) else a if b in chain(a) else ROW   # crossed plates of groups: per row

    scope = {}
    for n in order:
        at = None
        for i in n.inputs:
            at = join(at, scope[i])
        plate = n.attrs.get("plate")
        if n.kind == "input":   # a global latent given as an input (declare.evaluation) is global
            at = None if n.attrs.get("shared") else index_of.get(n.name, ROW)
        elif plate in groups and n.is_stochastic:
            if at is not None and at not in chain(plate):
                bad = next(i for i in n.inputs if scope[i] is not None and scope[i] not in chain(plate))
                what = "a data row" if scope[bad] == ROW else f"plate of groups '{scope[bad]}'"
                raise ModelError(f"{n.kind} '{n.name}' is drawn once per group of plate '{plate}' but reads "
                                 f"'{bad.name}', which varies with {what}; a group's node may read parameters, "
                                 f"global latents, its plate's (or an enclosing plate's) nodes and index")
            at = plate
        elif plate is not None and n.is_stochastic:
            at = ROW
        scope[n] = at
    glob = frozenset(n for n in order if n.is_stochastic and scope[n] is None)
    for lat in getattr(model, "latents", {}).values():
        if lat.node not in scope:
            continue
        bad = [a for a in lat.prior.args if a in scope and join(scope[a], scope[lat.node]) != scope[lat.node]]
        if bad:
            where = ("global (drawn outside every plate)" if scope[lat.node] is None
                     else f"drawn once per group of plate '{scope[lat.node]}'")
            finer = "the per-row node" if scope[bad[0]] == ROW else f"the node of plate '{scope[bad[0]]}'"
            raise ModelError(f"m.latent('{lat.node.name}', ...): '{lat.node.name}' is {where} but its prior reads "
                             f"{finer} '{bad[0].name}', which varies more finely; a prior may read "
                             f"parameters, global latents and the latents of the plates its node is drawn in "
                             f"(draw '{lat.node.name}' inside the plate of what its prior reads)")
    N = float("nan") if N is None else float(N)   # an unsized plate (m.plate(name)): NaN until fit sets it
    costs = [c for c in model.costs if scope[c] is not None]
    group_of = {n: s for n, s in scope.items() if s not in (None, ROW)}
    return glob, {c: N for c in costs}, group_of, {c: scope[c] for c in costs if scope[c] != ROW}


def _first_block(g: nx.DiGraph, s: Node, more=lambda name: ()):
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
