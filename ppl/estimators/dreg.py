"""DReG, the doubly reparameterised gradient of the importance-weighted bound (Tucker, Lawson, Gu
& Maddison 2019) for a reparameterised node z = loc + scale * eps.

The bound's pathwise gradient for the parameters phi upstream of q's loc and scale is
sum_k w_k (dC_k/dz_k dz_k/dphi + d/dphi log q_phi(z_k)), w_k the normalised weights. Its last term,
a score function, has a reparameterised twin; rewriting it leaves
    sum_k w_k^2 dC_k/dz_k dz_k/dphi,
dC_k/dz_k the partial derivative at fixed phi. In the step: the log_prob(z) costs' gradient does
not reach loc and scale directly (only through z), and z's cotangent (w_k / B dC_k/dz_k, from the
normalised weights the lowering seeds) is multiplied by w_k before it flows into loc and scale.
Parameters that reach the costs other than through q get the bound's ordinary gradient.

The rewrite holds when phi enters the costs through z and log q(z) only: z's loc and scale must
feed z alone (not a closed-form KL, say), depend on no stochastic node, and no stochastic node
may lie below z (`check`; the rule table then falls back to 'pathwise', an override is an error
naming the reason).
"""
from ppl.calls import KERNELS, batch_size
from ..analysis import graph as G
from .protocol import NO_GRAD, Rule, register
from .pathwise import Pathwise


@register
class DReG(Pathwise):
    """Pathwise's draw and backward, with the two changes above."""
    name = "dreg"
    rules = (Rule("*", 10, lambda i: i.objective == "iwae",
                  lambda i: "reparameterisable under the multi-sample (IWAE) bound: the doubly reparameterised "
                            "gradient (its encoder estimate does not lose its signal-to-noise ratio as K grows, "
                            "unlike pathwise)"),)
    about = 'doubly reparameterised gradient of the importance-weighted bound'
    cite = 'Tucker, Lawson, Gu & Maddison 2019, "Doubly reparameterized gradient estimators for Monte Carlo objectives", ICLR'
    stops_log_prob_params = True
    objectives = ("iwae",)

    def check(self, info):
        why = super().check(info)
        an, node = info.analysis, info.node
        if why is not None or an is None:
            return why
        g = an.graph
        stochastic = [n.name for n in an.order if n.is_stochastic]
        desc = G.descendants(g, node.name)
        below = [n for n in stochastic if n in desc]
        if below:
            return f"the stochastic node '{below[0]}' lies below it"
        own = {n.name for n in an.order if n.kind == "log_prob" and n.inputs[0] is node}   # log q(z) costs
        for p in node.inputs:
            others = sorted(set(g.successors(p.name)) - {node.name} - own)
            if others:
                return (f"its parameter '{p.name}' also feeds '{others[0]}': DReG's rewrite needs q's parameters "
                        f"to reach the costs through the draw and log q alone")
            anc = G.ancestors(g, p.name)
            above = [n for n in stochastic if n in anc]
            if above:
                return f"its parameter '{p.name}' depends on the stochastic node '{above[0]}'"
        return None

    def estimate(self, ctx):
        gv = ctx.cotangent()
        if gv is not NO_GRAD:
            ctx.call(KERNELS.rows.mul_rows, gv, ctx.rows.weights, batch_size())   # w_k / B dC/dz -> w_k^2 / B dC/dz
        super().estimate(ctx)

    def scalar_support(self, node, opts):
        return "the importance-weighted bound couples a data row's draws"
