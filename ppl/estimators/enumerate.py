"""Exact enumeration of a small discrete node's support.

Each drawn row becomes one row per joint value v of the node (mixed-radix digit of the row
index), weighted by p(v | a). Costs are summed with those weights, so the objective over this
node is exact; the node's parameters receive sum_v p(v|a) L_s(v) d log p(v|a)/da, the exact
gradient of sum_v p(v|a) L_s(v). Nodes downstream keep their own estimators. A count bounded by
a constant (a Binomial whose total_count is a number) takes its values 0..n per unit.

Given by probabilities (probs=), a value of probability 0 (p in {0, 1}, a class of weight 0) has
row weight 0 and adds nothing: the estimate is the derivative of the sum over the values of
positive probability, which at p in {0, 1} is not the one-sided derivative of the objective
(that needs the value the draw cannot take; 'mvd' evaluates it)."""
from ppl.calls import KERNELS, render

from .protocol import NO_GRAD, Estimator, register

MAX_SUPPORT = 4096
MAX_ENUMERATION = 64     # autotune measures enumeration for a support of at most this many values


@register
class Enumerate(Estimator):
    name = "enumerate"
    weights_configurations = True

    def not_measured(self, info):
        if info.support is not None and info.support > MAX_ENUMERATION:
            return f"a support of more than {MAX_ENUMERATION} values: as many rows per draw"
        return None
    about = 'exact sum over a small discrete support'

    def check(self, info):
        if not info.dist.discrete:
            return f"{info.dist.name} is continuous; enumeration needs a finite support"
        if info.support is None and info.dist.count_bound:
            return (f"its {info.dist.count_bound} is not a constant number, so its support is unknown when "
                    f"compiling; give {info.dist.count_bound} as a number, or use 'score' or 'mvd'")
        if info.support is None:
            return f"{info.dist.name} has infinitely many values; enumeration needs a finite support"
        if info.support > MAX_SUPPORT:
            return (f"its support has {info.support} values (more than {MAX_SUPPORT}); use 'score' or "
                    f"split the node into smaller ones")
        return None

    def expansion(self, info, opts):
        return info.support

    def draw(self, ctx):
        ctx.call(render(ctx.law.kernels["enum"], stride=ctx.rows.digit[0], K=ctx.node.attrs.get("K"), value=ctx.value(),
                        bound=lambda: ctx.law.constant_bound(ctx.node)))
        lp = ctx.buffer("lp")
        ctx.law_call("log_prob", [*ctx.params(), ctx.value()], [lp])
        ctx.call(KERNELS.rows.mul_exp, lp, ctx.rows.weights)

    def estimate(self, ctx):
        grads = ctx.param_grads()
        if all(gr is NO_GRAD for gr in grads):
            return
        L = ctx.downstream_cost()
        wts = ctx.buffer("w")
        rows = ctx.rows   # no baseline: its row of zeros
        ctx.call(KERNELS.rows.score_weights, rows.weights, L, rows.zeros, wts)
        ctx.law_call("log_prob_bwd", [*ctx.params(), ctx.value()], [wts, *grads, NO_GRAD])
