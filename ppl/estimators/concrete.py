"""Concrete / Gumbel-softmax relaxations (Maddison et al. 2017; Jang et al. 2017; seed 002, 003).

The forward pass uses the relaxed sample sigma((a + L) / tau) (binary Concrete, L logistic) or
softmax((a + g) / tau) (Gumbel-softmax, g Gumbel); the backward pass is its exact VJP. Costs
downstream see a continuous value, so the estimate is biased; the bias vanishes as tau -> 0
while the variance grows."""
from .base import Estimator, register


class _Relaxed(Estimator):
    unbiased = False
    passes_value_grad = True
    hard_forward = False
    options = {"temperature": 0.5}

    def check(self, info):
        if info.dist.relaxation != self.name and not (self.name == "concrete" and info.dist.relaxation):
            return f"{info.dist.name} has no {self.name} relaxation"
        if not info.differentiable:
            return f"a path to its costs goes through the gradient-free black box '{info.blocked_by}'"
        return None

    def forward(self, lw, node, opts):
        d = lw.dist(node)
        noise = lw.noise(node, d.noise)
        lw.noise_of[node] = noise
        tau = lw.state_value(f"{node.name}.temperature", float(opts["temperature"]))
        lw.call(d.kernels["relaxed_sample"], [*lw.param_values(node), noise, tau], [lw.v(node)], node)

    def backward(self, lw, node, opts):
        gv = lw.g(node)
        if gv is None:
            return
        d = lw.dist(node)
        tau = lw.state_value(f"{node.name}.temperature", float(opts["temperature"]))
        (a,) = lw.param_values(node)
        (ga,) = lw.param_grads(node)
        lw.call(d.kernels["relaxed_bwd"], [a, lw.noise_of[node], tau], [lw.v(node), gv, ga, lw.E1], node)


@register
class Concrete(_Relaxed):
    name = "concrete"


@register
class GumbelSoftmax(_Relaxed):
    name = "gumbel_softmax"
