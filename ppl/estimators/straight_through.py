"""Straight-through estimators (Bengio et al. 2013; Jang et al. 2017).

Bernoulli y = H(a + eps): the forward pass uses the hard sample, the backward pass the
derivative of the noise CDF, dF_eps(a)/da: sigmoid'(a) for logistic noise (link="logit"),
the normal pdf for Gaussian noise (link="probit"). Categorical (ST-Gumbel): one-hot forward,
backward through softmax((a + g) / tau). Biased."""
from .base import Estimator, Rule, register, sample_hard


@register
class StraightThrough(Estimator):
    name = "straight_through"
    rules = (Rule("fast", 40, lambda i: i.dist.straight_through and i.differentiable,
                  lambda i: "discrete with differentiable paths; policy 'fast' trades bias for low variance "
                            "(ReinMax, its default where it applies, needs a logit-link Bernoulli or Categorical "
                            "node)"),)
    about = "hard forward pass, the noise CDF's derivative backward"
    cite = 'Bengio, Leonard & Courville 2013, arXiv:1308.3432; ST-Gumbel: Jang, Gu & Poole 2017, ICLR'
    objectives = ("elbo", "iwae")
    unbiased = False
    bias = ("the backward pass differentiates a smooth stand-in for the hard sample (dF_eps(a)/da, or the "
            "Gumbel-softmax at the temperature): a first-order approximation of each discrete step")
    passes_value_grad = True
    shares_rows = True   # its backward is linear in the value's cotangent, per row
    options = {"temperature": 1.0}

    def check(self, info):
        if not info.dist.straight_through:
            return f"{info.dist.name} has no straight-through estimator"
        if not info.differentiable:
            return f"a path to its costs goes through the gradient-free black box '{info.blocked_by}'"
        return None

    def forward(self, lw, node, opts):
        sample_hard(lw, node)

    def backward(self, lw, node, opts):
        gv = lw.g(node)
        if gv is None:
            return
        d = lw.dist(node)
        (ga,) = lw.param_grads(node)
        if "st_bwd" in d.kernels:
            lw.call(d.kernels["st_bwd"], [*lw.param_values(node), gv], [ga], node)
            return
        tau = lw.state_value(f"{node.name}.temperature", float(opts["temperature"]))
        soft = lw.buf2(f"soft_{node.name}", node.width)
        (a,) = lw.param_values(node)
        noise = lw.noise_of[node]
        lw.call(d.kernels["relaxed_sample"], [a, noise, tau], [soft], node)
        lw.call(d.kernels["relaxed_bwd"], [a, noise, tau], [soft, gv, ga, lw.empty1], node)

    def scalar_support(self, node, opts):
        return None  # the scalar lowering admits Bernoulli (logit and probit) nodes only

    def scalar_forward(self, sl, node, opts):
        sl.sample_hard(node)

    def scalar_backward(self, sl, node, opts):
        g = sl.cot(node)
        if g is None:
            return
        (a,) = node.inputs
        density = sl.dist(node).scalar["st_density"]   # d P(value = 1) / d logits
        sl.add_cot(a, f"{g} * scalar.{density}({sl.val(a)})")
