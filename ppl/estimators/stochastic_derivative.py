"""Stochastic derivatives with pruning (Arya, Schauer, Schaefer & Rackauckas 2022, "Automatic
differentiation of programs with discrete randomness", NeurIPS), for Bernoulli, Categorical,
Poisson, Binomial and Geometric nodes (by logits or probs): the draw and ONE alternative path per
drawn row, chosen among the jumps of every such node with probability proportional to their
weights and carried through the rest of the graph (and the later steps of a `ppl.scan`),
unbiased.

Each unit's draw by inverse CDF would jump to an alternative value as its parameter grows, with
a weight per unit of the parameter (kernels/families/stochastic_derivative.py): a Bernoulli 0
to 1 (weight p per logit), a categorical group to each other class k (p_k), a Poisson count to
one more (1), a Binomial count to one more (total_count gets no gradient), a Geometric count to
one less. A weighted reservoir keeps one jump of all the nodes' units on each drawn row; the
alternative row holds the graph with that jump taken and the other nodes drawn plainly (common
random numbers), so its costs minus the draw's are the jump's f(y) - f(x), and the kept unit's
parameter gets W_total (f(y) - f(x)): one extra row per drawn row whatever the widths, the depth
and the loop's length (the lowering's part: ppl/lowering/alternative.py).

Weights. Where the laws' parameters depend on a few parameter entries (`ppl.param`, at most
lowering/tangents.MAX_DIRECTIONS) through ops with a forward rule, as a simulation's calibration
does, the jumps are weighed along them as the paper's forward mode weighs them along its
direction: by w sum_d |dq / dtheta_d|, the tangents computed in the step, and the estimate is added
to the parameters' gradients forward; in a scan a kept path that has met the drawn one again is
banked and the reservoir restarts, and each jump is weighed by an importance of its node and
step learned along the run where that measures better, and the draws' scores along them are added as
control variates with coefficients learned per step (lowering/tangents.py). With at most tangents.MAX_PATHS
directions each has an alternative path of its own, weighed by w |dq / dtheta_d| alone (one row
per direction: a jump that moves only another parameter is never kept for this one). Otherwise (a network's layers between
the parameters and the node, a parameter carried across steps, a pathwise node on the way, the
GPU target) the jumps are weighed per unit of each unit's own parameter and the estimate is the
reverse-mode gradient of every parameter at once.
"""
from ..distributions import DISTRIBUTIONS
from ..kernels.cpu.core import sd_grad
from .protocol import NO_GRAD, NO_GRAD_1D, Estimator, Rule, register
from .score import in_loop

NARROW = 16   # units of a node the default policy gives it under a black box (at most)

# law kind -> (its draw kernel, the noise of its draw, the parameter its jumps' weights are per unit of)
_DRAWS = {"bernoulli": ("sd_bernoulli_draw", "uniform", 0), "categorical": ("sd_categorical_draw", "gumbel", 0),
          "poisson": ("sd_poisson_draw", "uniform", 0), "bernoulli_probs": ("sd_bernoulli_probs_draw", "uniform", 0),
          "categorical_probs": ("sd_categorical_probs_draw", "uniform", 0),
          "binomial": ("sd_binomial_draw", "uniform", 1), "binomial_logits": ("sd_binomial_logits_draw", "uniform", 1),
          "geometric": ("sd_geometric_draw", "uniform", 0), "geometric_logits": ("sd_geometric_logits_draw", "uniform", 0)}


@register
class StochasticDerivative(Estimator):
    name = "stochastic_derivative"
    about = ("one alternative path per drawn row (the pruned jumps of every such node; one per parameter direction "
             "where few parameters move them), carried through the graph")
    cite = ('Arya, Schauer, Schaefer & Rackauckas 2022, "Automatic differentiation of programs with discrete '
            'randomness", NeurIPS')
    branch_rows = True
    alternative_row = True
    options = {"paths": "direction", "importance": "learned", "control": "score"}
    option_words = {"paths": {"direction": "an alternative path per parameter direction where at most 4 move the "
                                           "jumps (1 + directions rows)",
                              "shared": "one path for every direction, the jumps weighed by the tangents' norm "
                                        "(2 rows)"},
                    "importance": {"learned": "where the jumps are weighed along the parameters, each also by an "
                                              "importance of its node, step and path learned along the run (the "
                                              "root mean square of the alternatives' cost differences of earlier "
                                              "steps' kept jumps)",
                                   "none": "the jumps weighed by their tangents alone"},
                    "control": {"score": "where the jumps are weighed along the parameters, the draws' score (the "
                                         "derivative of their log-likelihood along each parameter) added as a control "
                                         "variate, its coefficient per step learned along the run",
                                "none": "no control variate"}}
    rules = (Rule("*", 45, lambda i: not i.differentiable and i.node.width <= NARROW and not in_loop(i)
                  and i.dist.kind in _DRAWS,
                  lambda i: f"a path to its costs goes through the gradient-free black box '{i.blocked_by}' and the "
                            f"node is narrow ({i.node.width} units): one alternative path per draw needs no "
                            f"derivative of the black box and had the least variance x time there (docs/benchmarks/"
                            f"simulations.md: RELAX's learned control variate cost far more)"),)
    kernels = {kind: {"sd_draw": kernel, **({"sd_draw1": f"{kernel}1"} if not kind.startswith("categorical") else {})}
               for kind, (kernel, _, _) in _DRAWS.items()}

    def jump_param(self, kind: str) -> int:
        """The input of a node of law `kind` its jumps are weighed in (lowering/tangents.py)."""
        return _DRAWS[kind][2]

    def check(self, info):
        if info.dist.kind not in _DRAWS:
            names = sorted({DISTRIBUTIONS[k].name for k in _DRAWS})
            return f"it has jumps for {', '.join(names)} nodes (a discrete draw by inverse CDF), not {info.dist.name}"
        return None

    def expansion(self, info, opts):
        return 2   # the drawn row and the alternative row (one for every such node: lowering.rows.plan_rows)

    def draw(self, ctx):
        alt = ctx.rows.alternative
        _, kind, _ = _DRAWS[ctx.law.kind]
        n, paths = ctx.node.width, alt.paths
        if kind == "uniform" and not ctx.law.kind.startswith("categorical"):
            u = v = ctx.noise("uniform", (1 + paths) * n)   # one buffer: the draw's, then each path's reservoir's
        else:
            u, v = ctx.noise(kind), ctx.noise("uniform", paths * n)
        along = alt.along(ctx.node, self.jump_param(ctx.law.kind)) if alt.along else (NO_GRAD, NO_GRAD)   # per unit
        learned = alt.learned(ctx.node) if alt.learned else (NO_GRAD_1D, -1, NO_GRAD)
        scores = alt.scores(ctx.node) if alt.scores else NO_GRAD   # the control variate's (along the parameters)
        one = n == 1 and paths == 1 and alt.directions <= 1 and "sd_draw1" in self.kernels[ctx.law.kind]
        ctx.law_call("sd_draw1" if one else "sd_draw", [*ctx.params(), u, v],
                     [*alt.slot, alt.W, alt.count, alt.D, ctx.buffer("switched", paths), ctx.buffer("tag", paths * n),
                      ctx.value(), ctx.rows.weights, *along, *learned, scores])

    def estimate(self, ctx):
        if ctx.rows.alternative.along:
            return   # added to the parameters' gradients at the backward's start (lowering/tangents.py)
        g = ctx.param_grads()[_DRAWS[ctx.law.kind][2]]
        if g is NO_GRAD:
            return
        alt = ctx.rows.alternative
        stride, _, span = alt.slot
        ctx.call(sd_grad, ctx.buffer("tag", alt.paths * ctx.node.width), stride, span, alt.W, alt.count, alt.D,
                 ctx.rows.weights, g)
