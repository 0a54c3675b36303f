"""Straight-through estimators (Bengio et al. 2013; Jang et al. 2017).

Bernoulli y = H(a + eps): the forward pass uses the hard sample, the backward pass the
derivative of the noise CDF, dF_eps(a)/da: sigmoid'(a) for logistic noise (link="logit"),
the normal pdf for Gaussian noise (link="probit"). Categorical (ST-Gumbel): one-hot forward,
backward through softmax((a + g) / tau). Given by probabilities (probs=), the backward pass is
the derivative of the value's mean: E[y] = p passes the cotangent unchanged, a group's
E[y] = w / sum w its Jacobian (finite at p in {0, 1} and at weights 0). Biased."""
from .protocol import NO_GRAD, NO_GRAD_1D, Estimator, Rule, register


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
    # a Bernoulli's backward dF_eps(a)/da per link; with probabilities, the derivative of the
    # value's mean (p; a group's w / sum w); a logit Categorical's goes through its relaxation
    kernels = {"bernoulli": {"st_bwd": "bernoulli_st_bwd"}, "bernoulli_probit": {"st_bwd": "probit_st_bwd"},
               "bernoulli_probs": {"st_bwd": "bernoulli_probs_st_bwd"},
               "categorical_probs": {"st_bwd": "categorical_probs_st_bwd"}}

    def check(self, info):
        if not info.dist.straight_through:
            return f"{info.dist.name} has no straight-through estimator"
        if not info.differentiable:
            return f"a path to its costs goes through the gradient-free black box '{info.blocked_by}'"
        return None

    def draw(self, ctx):
        ctx.sample()

    def estimate(self, ctx):
        gv = ctx.cotangent()
        if gv is NO_GRAD:
            return
        (ga,) = ctx.param_grads()
        if ctx.law.kind in self.kernels:
            ctx.law_call("st_bwd", [*ctx.params(), gv], [ga])
            return
        tau = ctx.state("temperature", float(ctx.options["temperature"]), name=f"{ctx.node.name}.temperature")
        soft = ctx.buffer("soft", ctx.node.width)
        (a,) = ctx.params()
        noise = ctx.drawn_noise()
        ctx.law_call("relaxed_sample", [a, noise, tau], [soft])
        ctx.law_call("relaxed_bwd", [a, noise, tau], [soft, gv, ga, NO_GRAD_1D])
