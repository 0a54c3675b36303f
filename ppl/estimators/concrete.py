"""Concrete / Gumbel-softmax relaxations (Maddison et al. 2017; Jang et al. 2017).

The forward pass uses the relaxed sample sigma((a + L) / tau) (binary Concrete, L logistic) or
softmax((a + g) / tau) (Gumbel-softmax, g Gumbel); the backward pass is its exact VJP. Costs
downstream see a continuous value, so the estimate is biased; the bias vanishes as tau -> 0
while the variance grows."""
from .protocol import NO_GRAD, NO_GRAD_1D, Estimator, register


class _Relaxed(Estimator):
    unbiased = False
    bias = "the costs see a relaxed value, not a sample of the node (the bias vanishes as the temperature -> 0)"
    passes_value_grad = True
    hard_forward = False
    options = {"temperature": 0.5}
    any_relaxation = False   # True: it serves every law with a relaxation (concrete), else the law's own only

    def check(self, info):
        if not info.dist.relaxation or not (self.any_relaxation or info.dist.relaxation == self.name):
            return f"{info.dist.name} has no {self.name} relaxation"
        if not info.differentiable:
            return f"a path to its costs goes through the gradient-free black box '{info.blocked_by}'"
        return None

    def draw(self, ctx):
        noise = ctx.noise(ctx.law.noise)
        tau = self.temperature(ctx)
        ctx.law_call("relaxed_sample", [*ctx.params(), noise, tau], [ctx.value()])

    def estimate(self, ctx):
        gv = ctx.cotangent()
        if gv is NO_GRAD:
            return
        tau = self.temperature(ctx)
        (a,) = ctx.params()
        (ga,) = ctx.param_grads()
        ctx.law_call("relaxed_bwd", [a, ctx.drawn_noise(), tau], [ctx.value(), gv, ga, NO_GRAD_1D])

    @staticmethod
    def temperature(ctx):
        """The fixed temperature (a node's `temperature` state, shared with the row-fused form)."""
        return ctx.state("temperature", float(ctx.options["temperature"]), name=f"{ctx.node.name}.temperature")


@register
class Concrete(_Relaxed):
    name = "concrete"
    any_relaxation = True
    about = 'binary Concrete relaxation, exact VJP of the relaxed sample'
    cite = 'Maddison, Mnih & Teh 2017, "The Concrete distribution", ICLR'


@register
class GumbelSoftmax(_Relaxed):
    name = "gumbel_softmax"
    about = 'Gumbel-softmax relaxation of a categorical, exact VJP'
    cite = 'Jang, Gu & Poole 2017, "Categorical reparameterization with Gumbel-softmax", ICLR'
