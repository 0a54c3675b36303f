"""Pass "requires grad": which node values need a cotangent, and the REBAR nodes above each
stochastic node."""
from __future__ import annotations

from ..analysis import graph as G
from ..errors import ModelError
from ..estimators import REGISTRY
from ..ops import OPS


class GradientNeeds:
    # ----- pass: requires grad
    def requires_grad(self):
        """req[node]: whether a cotangent of the node's value reaches a parameter; evaluated_by:
        the nodes above each stochastic node whose estimator evaluates the graph below again
        (`evaluates_below`: REBAR's rows relax it)."""
        self.evaluated_by = {}
        for n in self.an.order:
            if n.is_stochastic:
                anc = [s for s in self.evaluating if s.name in G.ancestors(self.an.graph, n.name)]
                if anc:
                    if self.an.blocked_by.get(n):
                        raise ModelError(f"'{n.name}' lies below the REBAR node '{anc[0].name}' but a path from it "
                                         f"goes through the gradient-free black box '{self.an.blocked_by[n]}'; "
                                         f"use 'relax' for '{anc[0].name}'")
                    self.evaluated_by[n] = anc
        carried = set()   # a loop's carry placeholders whose next value needs a cotangent
        while True:
            req = {}
            for n in self.an.order:
                if n.kind == "input":
                    req[n] = False
                elif n.kind in OPS and OPS[n.kind].params:   # an op owning parameters
                    req[n] = True
                elif n.is_stochastic:
                    est = REGISTRY[self.choices[n][0].estimator]
                    req[n] = (est.passes_value_grad or n in self.evaluated_by) and any(req[p] for p in n.inputs)
                else:
                    req[n] = any(req[p] for p in n.inputs) or n in carried
            more = {c for info in self.an.loops for c, o in zip(info.loop.carry, info.loop.carry_out)
                    if req[o] and not req[c]}
            if not more:
                break
            carried |= more
        self.req = req
        for c in self.model.order:
            if c.kind in OPS and OPS[c.kind].user and c.attrs["grad"] is None:
                what, fix = (("black box", "blackbox(..., grad=...)") if c.kind == "blackbox"
                             else ("layer", "ppl.layer(..., vjp=...)"))
                for x in c.inputs:
                    if req[x]:
                        raise ModelError(
                            f"{what} '{c.name}' has no gradient but its input '{x.name}' depends on "
                            f"parameters through a differentiable path; give {fix} or put a "
                            f"stochastic node (estimated by 'score') between the parameters and the {what}")
