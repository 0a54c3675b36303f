"""Pass "requires grad": which node values need a cotangent, and the REBAR nodes above each
stochastic node, returned as a frozen `GradientNeeds`."""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from ..analysis import graph as G
from ..errors import ModelError
from ..estimators.protocol import REGISTRY, joined_by
from ..ops import OPS
from .tangents import MAX_PATHS, jumping_nodes, plan_tangents


@dataclass(frozen=True)
class GradientNeeds:
    """What pass "requires grad" decides. `req[node]`: whether a cotangent of the node's value
    reaches a parameter; `evaluating`: the nodes whose estimator evaluates the graph below again
    (`evaluates_below`: REBAR's rows relax it), in order; `evaluated_by[node]`: those above a
    stochastic node."""

    req: MappingProxyType
    evaluating: tuple
    evaluated_by: MappingProxyType
    tangent: object = None   # tangents.TangentPlan: stochastic derivatives weighed along the parameters, or None


def requires_grad(model, an, choices, tangents: bool = False) -> GradientNeeds:
    """The gradient needs of the graph under its estimators (GradientNeeds); a user layer or
    black box without a gradient on a differentiable path, or a node below a REBAR node reached
    through a gradient-free black box, is an error naming it. `tangents`: the lowering may weigh
    stochastic derivatives along the parameters (tangents.plan_tangents); their nodes then send
    no cotangent to their parameters, and a value whose every reader sends none needs none."""
    evaluating, evaluated_by = _evaluations(an, choices)
    for n, anc in evaluated_by.items():
        if an.blocked_by.get(n):
            raise ModelError(f"'{n.name}' lies below the REBAR node '{anc[0].name}' but a path from it "
                             f"goes through the gradient-free black box '{an.blocked_by[n]}'; "
                             f"use 'relax_blackbox' or 'disarm' for '{anc[0].name}'")
    carried = set()   # a loop's carry placeholders whose next value needs a cotangent
    while True:
        req = {}
        for n in an.order:
            if n.kind == "input":
                req[n] = False
            elif n.kind in OPS and OPS[n.kind].params:   # an op owning parameters
                req[n] = True
            elif n.is_stochastic:
                est = REGISTRY[choices[n][0].estimator]
                req[n] = (est.passes_value_grad or n in evaluated_by) and any(req[p] for p in n.inputs)
            else:
                req[n] = any(req[p] for p in n.inputs) or n in carried
        more = {c for info in an.loops for c, o in zip(info.loop.carry, info.loop.carry_out)
                if req[o] and not req[c]}
        if not more:
            break
        carried |= more
    for c in model.order:
        if c.kind in OPS and OPS[c.kind].user and c.attrs["grad"] is None:
            what, fix = (("black box", "blackbox(..., grad=...)") if c.kind == "blackbox"
                         else ("layer", "ppl.layer(..., vjp=...)"))
            for x in c.inputs:
                if req[x]:
                    raise ModelError(
                        f"{what} '{c.name}' has no gradient but its input '{x.name}' depends on "
                        f"parameters through a differentiable path; give {fix} or put a "
                        f"stochastic node (estimated by 'score') between the parameters and the {what}")
    plan = tangent_plan(model, an, choices, evaluated_by) if tangents else None
    if plan is not None:
        req = _unread(an, choices, req)
    return GradientNeeds(MappingProxyType(req), evaluating, MappingProxyType(evaluated_by), plan)


def _evaluations(an, choices):
    """(the nodes whose estimator evaluates the graph below them (REBAR), in order; each
    stochastic node below one -> those above it)."""
    evaluating = tuple(joined_by(an.order, choices, "relaxed"))
    evaluated_by = {}
    for n in an.order:
        if n.is_stochastic:
            anc = tuple(s for s in evaluating if s.name in G.ancestors(an.graph, n.name))
            if anc:
                evaluated_by[n] = anc
    return evaluating, evaluated_by


def tangent_plan(model, an, choices, evaluated_by=None):
    """The tangents.TangentPlan of the graph's stochastic derivatives, or None (weighed per unit):
    none when a jumping node lies below a REBAR node (`evaluated_by`: requires_grad's)."""
    if evaluated_by is None:
        evaluated_by = _evaluations(an, choices)[1]
    if any(n in evaluated_by for n in jumping_nodes(an, choices)):
        return None
    return plan_tangents(model, an, choices, lambda n: REGISTRY[choices[n][0].estimator].jump_param(n.kind))


def alternative_paths(model, an, choices, tangents: bool) -> int:
    """The alternative rows of the graph's stochastic derivatives (lowering/alternative.py): one
    per direction where the jumps are weighed along at most tangents.MAX_PATHS parameter entries
    (unless a jumping node's option paths is "shared"), else one for all."""
    nodes = jumping_nodes(an, choices)
    if not tangents or not nodes or any(choices[n][0].options.get("paths") == "shared" for n in nodes):
        return 1
    plan = tangent_plan(model, an, choices)
    return len(plan.directions) if plan is not None and len(plan.directions) <= MAX_PATHS else 1


def _unread(an, choices, req: dict) -> dict:
    """req without the values no reader sends a cotangent to: the jumping nodes weighed along
    the parameters send none to their inputs, and a layer whose value gets none sends none; the
    carries, a loop's outputs and the nodes owning parameters keep theirs."""
    jumping = set(jumping_nodes(an, choices))
    keep = {m for info in an.loops for m in (*info.loop.carry, *info.loop.carry_out, *info.loop.ys)}
    gets = {}
    for n in reversed(an.order):
        readers = [an.graph.nodes[k]["node"] for k in an.graph.successors(n.name)]
        gets[n] = bool(n in keep or n.kind not in OPS or OPS[n.kind].params or n.attrs.get("is_head")
                       or any(r not in jumping and (r.is_stochastic or gets.get(r, True)) for r in readers))
    return {n: r and gets[n] for n, r in req.items()}
