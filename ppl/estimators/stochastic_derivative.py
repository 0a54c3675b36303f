"""Stochastic derivatives with pruning (Arya, Schauer, Schaefer & Rackauckas 2022, "Automatic
differentiation of programs with discrete randomness", NeurIPS), for Bernoulli, Categorical and
Poisson nodes: the draw and ONE alternative path per drawn row, chosen among the jumps of every
such node with probability proportional to their weights and carried through the rest of the
graph (and the later steps of a `ppl.scan`), unbiased.

Each unit's draw by inverse CDF would jump to an alternative value as its parameter grows, with
a weight per unit of the parameter (kernels/families/stochastic_derivative.py): a Bernoulli 0
to 1 (weight p), a categorical group to each other class k (p_k), a Poisson count to one more
(1). A weighted reservoir keeps one jump of all the nodes' units on each drawn row; the
alternative row holds the graph with that jump taken and the other nodes drawn plainly (common
random numbers), so its costs minus the draw's are the jump's f(y) - f(x), and the kept unit's
parameter gets W_total (f(y) - f(x)): one extra row per drawn row whatever the widths, the depth
and the loop's length (the lowering's part: ppl/lowering/alternative.py). Where the paper works
in forward mode along one direction, the jumps here are weighed per unit of each unit's own
parameter and the estimate is the reverse-mode gradient of every parameter at once.
"""
from ..kernels.cpu.core import sd_grad
from .base import NO_GRAD, Estimator, register

# law kind -> (its draw kernel, the noise of its draw)
_DRAWS = {"bernoulli": ("sd_bernoulli_draw", "uniform"), "categorical": ("sd_categorical_draw", "gumbel"),
          "poisson": ("sd_poisson_draw", "uniform")}


@register
class StochasticDerivative(Estimator):
    name = "stochastic_derivative"
    about = "one alternative path per drawn row (the pruned jumps of every such node), carried through the graph"
    cite = ('Arya, Schauer, Schaefer & Rackauckas 2022, "Automatic differentiation of programs with discrete '
            'randomness", NeurIPS')
    branch_rows = True
    alternative_row = True
    kernels = {kind: {"sd_draw": kernel} for kind, (kernel, _) in _DRAWS.items()}

    def check(self, info):
        if info.dist.kind not in _DRAWS:
            return (f"it has jumps for {', '.join(sorted(_DRAWS))} nodes (a discrete draw by inverse CDF), not "
                    f"{info.dist.name}")
        return None

    def expansion(self, info, opts):
        return 2   # the drawn row and the alternative row (one for every such node: Lowering.plan_rows)

    def draw(self, ctx):
        alt = ctx.rows.alternative
        _, kind = _DRAWS[ctx.law.kind]
        u, v = ctx.noise(kind), ctx.noise("uniform")
        ctx.law_call("sd_draw", [*ctx.params(), u, v], [*alt.slot, alt.W, alt.count, alt.D, ctx.buffer("switched"),
                                                        ctx.buffer("tag", ctx.node.width), ctx.value(), ctx.rows.weights])

    def estimate(self, ctx):
        (g,) = ctx.param_grads()
        if g is NO_GRAD:
            return
        alt = ctx.rows.alternative
        stride, _, span = alt.slot
        ctx.call(sd_grad, ctx.buffer("tag", ctx.node.width), stride, span, alt.W, alt.count, alt.D, ctx.rows.weights, g)
